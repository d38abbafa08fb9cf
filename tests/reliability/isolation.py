"""Subprocess helper of the reliability suite: bad inputs that could crash the interpreter (a
kernel reading or writing out of bounds) run in a fresh interpreter, so a segfault fails the
tests of those cases instead of killing the whole run."""
import json
import os
import subprocess
import sys
import textwrap

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_BATCH = '''
import json, sys
cases = json.loads(sys.argv[1])
for name, code in cases.items():
    print('@@START', name, flush=True)
    try:
        exec(code, {'mx': mx, 'nd': nd, 'autograd': autograd, '__name__': 'case'})
        print('@@DONE', json.dumps([name, 'no error', '']), flush=True)
    except mx.MXNetError as e:
        print('@@DONE', json.dumps([name, 'MXNetError', str(e)]), flush=True)
    except Exception as e:
        print('@@DONE', json.dumps([name, type(e).__name__, str(e)]), flush=True)
'''


def run_cases(cases):
    """Run many snippets in ONE subprocess (one interpreter start for all) and return
    {name: (outcome, message)}; outcome is 'MXNetError', another exception's name, 'no error',
    or 'crashed (return code N)' for the case running when the process died (later cases:
    'not run')."""
    env = dict(os.environ, ENGINE_NUM_THREADS='1', PYTHONPATH=_ROOT)
    code = 'import engine as mx\nfrom engine import nd, autograd\n' + _BATCH
    proc = subprocess.run([sys.executable, '-c', code, json.dumps({k: textwrap.dedent(v) for k, v in cases.items()})],
                          cwd=_ROOT, env=env, capture_output=True, text=True, timeout=300)
    results, running = {}, None
    for line in proc.stdout.splitlines():
        if line.startswith('@@START '):
            running = line[8:]
        elif line.startswith('@@DONE '):
            name, outcome, msg = json.loads(line[7:])
            results[name], running = (outcome, msg), None
    if running is not None:
        results[running] = (f'crashed (return code {proc.returncode})', proc.stderr[-2000:])
    for name in cases:
        results.setdefault(name, ('not run', proc.stderr[-2000:]))
    return results
