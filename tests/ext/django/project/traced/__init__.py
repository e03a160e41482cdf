"""A local package for the PATCH_MODULES tests: its functions get a subsegment each once patched."""


def greet(name):
    return 'hello %s' % name
