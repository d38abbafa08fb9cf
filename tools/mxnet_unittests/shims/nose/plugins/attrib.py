def attr(*args, **kwargs):
    return lambda fn: fn
