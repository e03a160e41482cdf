from django.urls import path, re_path

from . import views

urlpatterns = [
    path('', views.index),
    path('items/<int:pk>/', views.item_detail),
    path('two-databases/', views.two_databases),
    path('raw-sql/', views.raw_sql),
    path('bad-sql/', views.bad_sql),
    path('page/', views.page),
    path('inline-template/', views.inline_template),
    path('boom/', views.boom),
    path('missing/', views.missing),
    path('throttled/', views.throttled),
    path('annotate/', views.annotate),
    path('stream/', views.stream),
    path('stream-broken/', views.stream_broken),
    re_path(r'^regex/(?P<slug>[a-z]+)/$', views.index),
    path('async/', views.async_index),
    path('async/query/', views.async_query),
    path('async/boom/', views.async_boom),
    path('async/stream/', views.async_stream),
]
