"""Resolve plugin names given to ``configure(plugins=...)`` to plugin modules."""
import importlib
import logging
from types import ModuleType
from typing import Iterable, List, Union

from ..exceptions.exceptions import MissingPluginNames

log = logging.getLogger(__name__)

__all__ = ['get_plugin_modules', 'PLUGIN_MAPPING', 'module_prefix']

module_prefix = 'aws_like_sdk.core.plugins.'

PLUGIN_MAPPING = {
    'elasticbeanstalkplugin': 'elasticbeanstalk_plugin',
    'ec2plugin': 'ec2_plugin',
    'ecsplugin': 'ecs_plugin',
}


def get_plugin_modules(plugins: Union[str, Iterable[str]]) -> List[ModuleType]:
    """Return the plugin modules for ``plugins``, in order.

    Names are ``'EC2Plugin'``, ``'ECSPlugin'``, ``'ElasticBeanstalkPlugin'`` (any case) or a module
    name under ``aws_like_sdk.core.plugins``. An unknown name is logged and skipped, so a typo
    costs that plugin's data rather than the application's start-up.

    Args:
        plugins: plugin names; a single string is taken as one name.

    Raises:
        MissingPluginNames: when no name is given.
    """
    if isinstance(plugins, str):
        plugins = (plugins,)
    names = list(plugins or ())
    if not names:
        raise MissingPluginNames('input plugin names are required')
    modules = []
    for plugin in names:
        module_name = PLUGIN_MAPPING.get(str(plugin).lower(), str(plugin))
        if not module_name.isidentifier():
            log.warning('Ignoring invalid plugin name %r.', plugin)
            continue
        try:
            modules.append(importlib.import_module(module_prefix + module_name))
        except ImportError:
            log.warning('Unknown plugin %r ignored; use EC2Plugin, ECSPlugin or ElasticBeanstalkPlugin.', plugin)
    return modules
