"""XRayFlaskSqlAlchemy with Flask-SQLAlchemy 3 and a real Flask app traced by the Flask middleware."""
import pytest
from flask import Flask
from flask_sqlalchemy.session import Session as FlaskSession

from aws_like_sdk.ext.flask.middleware import XRayMiddleware
from aws_like_sdk.ext.flask_sqlalchemy.query import XRayBaseQuery, XRayFlaskSqlAlchemy, XRaySignallingSession


@pytest.fixture
def flask_app(xray, tmp_path):
    app = Flask('fsa_app')
    app.config['SQLALCHEMY_DATABASE_URI'] = 'sqlite:///%s' % (tmp_path / 'fsa.db')
    app.config['SQLALCHEMY_BINDS'] = {'audit': 'sqlite:///%s' % (tmp_path / 'audit.db')}
    db = XRayFlaskSqlAlchemy(app)

    class Note(db.Model):
        id = db.Column(db.Integer, primary_key=True)
        text = db.Column(db.String(50), nullable=False)

    class Audit(db.Model):
        __bind_key__ = 'audit'
        id = db.Column(db.Integer, primary_key=True)
        what = db.Column(db.String(50))

    with app.app_context():
        db.create_all()

    @app.route('/notes/<text>', methods=['POST'])
    def add(text):
        db.session.add(Note(text=text))
        db.session.add(Audit(what='add'))
        db.session.commit()
        return {'count': Note.query.count()}

    @app.route('/notes/<int:note_id>')
    def get(note_id):
        return {'text': db.get_or_404(Note, note_id).text}

    @app.route('/legacy/<int:note_id>')
    def legacy(note_id):
        return {'text': Note.query.get_or_404(note_id).text}

    XRayMiddleware(app, xray)
    app.db = db
    return app


def test_session_and_query_classes(flask_app):
    with flask_app.app_context():
        session = flask_app.db.session()
        assert isinstance(session, XRaySignallingSession) and isinstance(session, FlaskSession)
        assert flask_app.db.Query is XRayBaseQuery


def test_orm_subsegments_under_the_request_segment(flask_app, udp_sink, tmp_path):
    client = flask_app.test_client()
    assert client.post('/notes/hello').get_json() == {'count': 1}
    (doc,) = udp_sink.wait_for(1)
    calls = [s['annotations']['sqlalchemy'] for s in doc['subsegments']]
    assert 'sqlalchemy.orm.session.add' in calls and 'sqlalchemy.orm.session.commit' in calls
    assert 'sqlalchemy.orm.query.count' in calls
    assert all(s['namespace'] == 'remote' for s in doc['subsegments'])
    assert doc['annotations']['http_route'] == '/notes/<text>'


def test_get_or_404_paths(flask_app, udp_sink):
    client = flask_app.test_client()
    client.post('/notes/x')
    udp_sink.wait_for(1)
    udp_sink.clear()
    assert client.get('/legacy/1').get_json() == {'text': 'x'}
    assert client.get('/legacy/99').status_code == 404
    assert client.get('/notes/99').status_code == 404
    docs = udp_sink.wait_for(3)
    statuses = sorted(d['http']['response']['status'] for d in docs)
    assert statuses == [200, 404, 404]
    legacy_ok = [d for d in docs if d['http']['response']['status'] == 200][0]
    assert [s['annotations']['sqlalchemy'] for s in legacy_ok['subsegments']] == [
        'flask_sqlalchemy.query.get_or_404']


def test_bind_keys_still_route_to_their_engine(flask_app, tmp_path):
    with flask_app.app_context():
        db = flask_app.db
        audit_table = db.metadatas['audit'].tables['audit']
        bind = db.session.get_bind(clause=audit_table)
        assert str(bind.url).endswith('audit.db')


def test_compat_constructor_arguments(xray):
    app = Flask('compat')
    app.config['SQLALCHEMY_DATABASE_URI'] = 'sqlite://'
    db = XRayFlaskSqlAlchemy(app, use_native_unicode=False, session_options={'autoflush': False})
    with app.app_context():
        assert db.session().autoflush is False
        assert isinstance(db.session(), XRaySignallingSession)
