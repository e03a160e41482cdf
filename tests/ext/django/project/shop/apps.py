from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = 'tests.ext.django.project.shop'
    label = 'shop'
    default_auto_field = 'django.db.models.AutoField'
