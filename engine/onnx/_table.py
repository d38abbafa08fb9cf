"""The registry shape both ONNX tables share: a dict of rules and the decorator that fills it."""


def rule_table():
    """(rules, rule): `@rule('a', 'b')` registers the decorated function under both names."""
    rules = {}

    def rule(*names):
        def deco(fn):
            for n in names:
                rules[n] = fn
            return fn
        return deco
    return rules, rule
