"""ORM-level names (XRaySessionMaker, XRaySession, XRayQuery) with SQLAlchemy 2 on SQLite files."""
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.orm.query import Query

from aws_like_sdk.ext.sqlalchemy.query import XRayQuery, XRaySession, XRaySessionMaker
from aws_like_sdk.ext.sqlalchemy.util.decorators import decorate_all_functions, parse_bind, xray_on_call


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = 'orm_users'
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


@pytest.fixture
def orm_engine(tmp_path):
    eng = sa.create_engine('sqlite:///%s' % (tmp_path / 'orm.db'))
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def test_session_calls_are_subsegments_with_annotation(xray, udp_sink, orm_engine, tmp_path):
    Session_ = XRaySessionMaker(bind=orm_engine)
    with xray.in_segment('request'):
        with Session_() as session:
            session.add(User(name='alice'))
            session.commit()
            names = session.scalars(sa.select(User.name)).all()
    assert names == ['alice']
    (doc,) = udp_sink.wait_for(1)
    subs = doc['subsegments']
    url = 'sqlite:///%s' % (tmp_path / 'orm.db')
    annotations = [s['annotations']['sqlalchemy'] for s in subs]
    assert annotations == ['sqlalchemy.orm.session.add', 'sqlalchemy.orm.session.commit',
                           'sqlalchemy.orm.session.scalars', 'sqlalchemy.orm.session.close']
    for sub in subs:
        assert sub['name'] == url and sub['namespace'] == 'remote'
        assert sub['sql'] == {'url': url, 'database_type': 'sqlite'}
        # Nested ORM calls (commit -> flush, scalars -> get_bind) do not open more subsegments.
        assert 'subsegments' not in sub


def test_legacy_query_records_sanitized_text(xray, udp_sink, orm_engine):
    Session_ = XRaySessionMaker(bind=orm_engine)
    with Session_() as session:
        session.add(User(name='bob'))
        session.commit()
    with xray.in_segment('request'):
        with Session_() as session:
            query = session.query(User).filter(User.name == 'bob')
            assert isinstance(query, XRayQuery)
            assert [u.name for u in query.all()] == ['bob']
    (doc,) = udp_sink.wait_for(1)
    by_call = {s['annotations']['sqlalchemy']: s for s in doc['subsegments']}
    all_call = by_call['sqlalchemy.orm.query.all']
    assert all_call['sql']['sanitized_query'].startswith('SELECT orm_users.id')
    assert 'orm_users.name = ?' in all_call['sql']['sanitized_query']
    assert 'bob' not in all_call['sql']['sanitized_query']


def test_errors_are_recorded_and_reraised(xray, udp_sink, orm_engine):
    Session_ = XRaySessionMaker(bind=orm_engine)
    with xray.in_segment('request'):
        with Session_() as session:
            with pytest.raises(sa.exc.OperationalError):
                session.execute(sa.text('SELECT * FROM missing_table'))
    (doc,) = udp_sink.wait_for(1)
    failing = [s for s in doc['subsegments'] if s['annotations']['sqlalchemy'].endswith('.execute')]
    assert failing[0]['fault'] is True
    assert failing[0]['cause']['exceptions'][0]['type'] == 'OperationalError'


def test_core_patch_statements_nest_under_orm_calls(xray, udp_sink, orm_engine, patched):
    Session_ = XRaySessionMaker(bind=orm_engine)
    with xray.in_segment('request'):
        with Session_() as session:
            session.execute(sa.select(User)).all()
    (doc,) = udp_sink.wait_for(1)
    execute = doc['subsegments'][0]
    assert execute['annotations']['sqlalchemy'] == 'sqlalchemy.orm.session.execute'
    assert [s['sql']['sanitized_query'][:6] for s in execute['subsegments']] == ['SELECT']


def test_without_segment_nothing_is_recorded_or_logged(orm_engine, xray, udp_sink, caplog_sdk):
    with XRaySessionMaker(bind=orm_engine)() as session:
        session.add(User(name='quiet'))
        session.commit()
        assert session.query(User).count() == 1
    assert udp_sink.settle(quiet=0.1) == []
    assert not [r for r in caplog_sdk.records if r.levelno >= 30]


def test_sqlalchemy_own_classes_are_not_modified():
    assert not hasattr(Session.__dict__['execute'], '_aws_like_sdk_orm_wrapper')
    assert not hasattr(Query.__dict__['all'], '_aws_like_sdk_orm_wrapper')
    assert XRaySession.__dict__['execute']._aws_like_sdk_orm_wrapper is True


def test_sessionmaker_compat_arguments(orm_engine, caplog_sdk):
    maker = XRaySessionMaker(bind=orm_engine, autocommit=True, expire_on_commit=False, info={'k': 1})
    session = maker()
    assert isinstance(session, XRaySession) and session.info == {'k': 1}
    assert session.expire_on_commit is False
    assert any('autocommit' in r.getMessage() for r in caplog_sdk.records)
    session.close()


def test_unbound_session_is_untraced_and_raises_its_own_error(xray, udp_sink):
    with xray.in_segment('request'):
        with XRaySession() as session:
            with pytest.raises(sa.exc.UnboundExecutionError):
                session.execute(sa.text('SELECT 1'))
    (doc,) = udp_sink.wait_for(1)
    assert 'subsegments' not in doc


def test_parse_bind_engine_connection_and_nothing(orm_engine, tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'orm.db')
    assert parse_bind(orm_engine) == {'url': url, 'database_type': 'sqlite'}
    with orm_engine.connect() as conn:
        assert parse_bind(conn) == {'url': url, 'database_type': 'sqlite'}
    assert parse_bind(None) is None


def test_decorate_all_functions_wraps_only_the_subclass():
    calls = []

    class Base_:
        def ping(self):
            return 'pong'

        def _private(self):
            return 'p'

    def recorder_decorator(cls, func):
        def wrapper(*args, **kwargs):
            calls.append((cls.__name__, func.__name__))
            return func(*args, **kwargs)
        return wrapper

    @decorate_all_functions(recorder_decorator)
    class Child(Base_):
        pass

    assert Child().ping() == 'pong' and Base_().ping() == 'pong' and Child()._private() == 'p'
    assert calls == [('Base_', 'ping')]
    assert callable(xray_on_call(Base_, Base_.ping))
