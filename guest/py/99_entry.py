# gearbox guest prelude (Python), last part: the entry points and the engine's dispatcher.
#
# The engine (host/sandbox/engines/micropython/engine.ts) calls __gearbox_call(kind, a, b, seed)
# for everything after the prelude. It never lets an exception escape: it answers 'v' + a
# string result, 'o' done, 'p' pending, 'n' + a type name, or 'f' + JSON [name, message,
# traceback, code].

_GB_PENDING = object()
_gb_waiting_entry = [None]


def _gb_eval(name, code):
    exec(compile(code, name, 'exec'), _gb_user)


def _gb_main(boundary=True):
    def finish():
        if _gb_tasks_live[0] > 0:
            return _GB_PENDING
        if boundary:
            _gb_host('toplevel.done')
        outcome = _gb_state['outcome']
        return _gb_dumps(_gb_wire(outcome() if outcome is not None else {'kind': 'ok'}))
    _gb_run_ready()
    return finish


_gb_entries['__gearbox_main'] = _gb_main


def _gb_answer_of(result):
    if callable(result):
        value = result()
        if value is _GB_PENDING:
            _gb_waiting_entry[0] = result
            return 'p'
        result = value
    if isinstance(result, str):
        return 'v' + result
    return 'n' + type(result).__name__


def __gearbox_call(kind, a, b, seed):
    try:
        if seed:
            _gb_seed(seed)
        if kind == 'eval':
            _gb_eval(a, b)
            return 'o'
        if kind == 'entry':
            fn = _gb_entries.get(a)
            if fn is None:
                return 'f' + _gb_dumps(['TypeError', 'the entry ' + a + ' is not a function in this interpreter', None, None])
            return _gb_answer_of(fn(*_gb_json.loads(b)))
        if kind == 'answer':
            _gb_answer(int(a), b)
            return 'o'
        if kind == 'step':
            _gb_run_ready()
            return 'o'
        if kind == 'state':
            waiting = _gb_waiting_entry[0]
            if waiting is None:
                return 'p'
            _gb_waiting_entry[0] = None
            return _gb_answer_of(waiting)
        return 'f' + _gb_dumps(['TypeError', 'unknown dispatcher call ' + kind, None, None])
    except BaseException as e:
        return 'f' + _gb_failure(e)


try:
    import random as _gb_random

    def _gb_seed(n):
        _gb_random.seed(n)
except ImportError:
    def _gb_seed(n):
        pass
