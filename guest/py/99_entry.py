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


def _gb_after_top_level(boundary, then):
    """An entry's result: once the top level's coroutines finished, report the boundary, then
    `then()` (which may start more coroutines: a run's kernel); once those finished too, its value."""
    st = {'phase': 0, 'value': None}

    def finish():
        if st['phase'] == 0:
            if _gb_tasks_live[0] > 0:
                return _GB_PENDING
            if boundary:
                _gb_host('toplevel.done')
            st['phase'] = 1
            st['value'] = then()
            _gb_run_ready()
        if _gb_tasks_live[0] > 0:
            return _GB_PENDING
        failure = _gb_kernel_failure[0]
        if failure is not None:
            _gb_kernel_failure[0] = None
            raise failure
        return st['value']
    _gb_run_ready()
    return finish


def _gb_main(boundary=True):
    def then():
        outcome = _gb_state['outcome']
        return _gb_dumps(_gb_wire(outcome() if outcome is not None else {'kind': 'ok'}))
    return _gb_after_top_level(boundary, then)


def _gb_stage(stage):
    def then():
        # The host refuses when this evaluation's top level did not build the initiator's flow.
        info = _gb_host('gears.stage', _gb_dumps({'stage': stage}))
        _gb_spawn(_gb_kernel(info, _gb_source_of(info)), _gb_kernel_done)
        return '{"kind":"stage"}'
    return _gb_after_top_level(True, then)


def _gb_registration(index, kind):
    def then():
        info = _gb_host('gears.event', _gb_dumps({'registration': index, 'kind': kind}))
        if kind == 'registered':
            fn = _gb_held[info['onRegistered']] if isinstance(info.get('onRegistered'), int) else None
            if not callable(fn):
                raise GearsError('gears: the registration has no onRegistered function')
            result = fn()
            if _gb_is_coroutine(result):
                _gb_spawn(result, _gb_kernel_done)
            return '{"kind":"registered"}'
        info['reader'] = None
        _gb_spawn(_gb_kernel(info, _GbEventSource(info.get('records'))), _gb_kernel_done)
        return '{"kind":"event"}'
    return _gb_after_top_level(True, then)


_gb_entries['__gearbox_gears_stage'] = _gb_stage
_gb_entries['__gearbox_gears_registration'] = _gb_registration
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
