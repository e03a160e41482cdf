"""Views of the test project: one per behaviour the tests look at."""
import asyncio

from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template import Context, Template

from aws_like_sdk.core import xray_recorder

from .shop.models import Item


class ViewError(Exception):
    """Raised by the failing views; tests check that exactly this reaches Django."""


def index(request):
    return HttpResponse('hello')


def item_detail(request, pk):
    item = Item.objects.filter(pk=pk).first()
    return HttpResponse(item.name if item else 'none')


def two_databases(request):
    Item.objects.using('default').create(name='apple', price=3)
    Item.objects.using('other').create(name='pear', price=5)
    counts = {alias: Item.objects.using(alias).count() for alias in ('default', 'other')}
    return JsonResponse(counts)


def raw_sql(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM shop_item WHERE name = 'top secret' AND price > 42")
        cursor.execute('SELECT name FROM shop_item WHERE name = %s', ['param-secret'])
        cursor.executemany('INSERT INTO shop_item (name, price) VALUES (%s, %s)', [('a', 1), ('b', 2)])
    return HttpResponse('ok')


def bad_sql(request):
    with connections['default'].cursor() as cursor:
        cursor.execute('SELECT * FROM no_such_table')
    return HttpResponse('unreachable')


def page(request):
    return render(request, 'page.html', {'title': 'Items', 'items': ['one', 'two']})


def inline_template(request):
    return HttpResponse(Template('{{ word }}!').render(Context({'word': 'hi'})))


def boom(request):
    raise ViewError('boom')


def missing(request):
    raise Http404('nothing here')


def throttled(request):
    return HttpResponse('slow down', status=429)


def annotate(request):
    xray_recorder.put_annotation('view', 'annotate')
    return HttpResponse('annotated')


def stream(request):
    def chunks():
        for part in (b'alpha', b'beta', b'gamma'):
            yield part
        Item.objects.count()  # queried while streaming: still inside the segment
    return StreamingHttpResponse(chunks())


def stream_broken(request):
    def chunks():
        yield b'first'
        raise ViewError('stream broke')
    return StreamingHttpResponse(chunks())


async def async_index(request):
    await asyncio.sleep(0)
    return HttpResponse('async hello')


async def async_query(request):
    count = await sync_to_async(Item.objects.count)()
    return HttpResponse(str(count))


async def async_boom(request):
    await asyncio.sleep(0)
    raise ViewError('async boom')


async def async_stream(request):
    async def chunks():
        for part in (b'one', b'two'):
            await asyncio.sleep(0)
            yield part
    return StreamingHttpResponse(chunks())
