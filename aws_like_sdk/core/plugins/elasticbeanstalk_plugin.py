"""Elastic Beanstalk plugin: records the environment file the X-Ray integration writes on the host
(``deployment_id``, ``version_label``, ``environment_name``) under ``aws.elastic_beanstalk``."""
import json
import logging
from typing import Any, Dict

log = logging.getLogger(__name__)

CONF_PATH = '/var/elasticbeanstalk/xray/environment.conf'
SERVICE_NAME = 'elastic_beanstalk'
ORIGIN = 'AWS::ElasticBeanstalk::Environment'

runtime_context: Dict[str, Any] = {}


def initialize() -> None:
    """Read :data:`CONF_PATH` (a module variable tests may point elsewhere) into
    :data:`runtime_context`; a missing or malformed file leaves it empty."""
    global runtime_context
    try:
        with open(CONF_PATH, encoding='utf-8') as conf:
            data = json.load(conf)
    except (OSError, ValueError):
        log.warning('Could not read Elastic Beanstalk environment from %s.', CONF_PATH, exc_info=True)
        data = {}
    runtime_context = data if isinstance(data, dict) else {}
