# gearbox guest prelude (Python), part 1: the RedisGears runtime API (spec §1) as globals of the
# user's script. Argument checks happen here with RedisGears 1.2's texts; the host does the Redis
# work and is the authority on atomic blocks.


def execute(*argv):
    if len(argv) == 0:
        return []
    if not isinstance(argv[0], str):
        raise GearsError('the given command must be a string')
    return _gb_host('execute', _gb_dumps([_gb_arg(a) for a in argv]))


class atomic:
    """`with atomic():` runs the block's commands as one transaction (host/runtime/atomic.ts).

    The host runs it optimistically (MULTI/EXEC with WATCH); when a concurrent writer changed a
    key the block read, the block's writes are not applied and GearsError is raised (a `with`
    block cannot be re-run; the callable form `atomic(fn)` re-runs fn until it commits).
    """

    def __init__(self, fn=None):
        self._fn = fn
        if fn is not None:
            if not callable(fn):
                raise GearsError('atomic expects a function or a with block')

    def __enter__(self):
        _gb_host('atomic.begin')
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            _gb_host('atomic.abort')
            return False
        if _gb_host('atomic.commit') is not True:
            raise GearsError('atomic block conflicted with a concurrent writer: its writes were not applied')
        return False

    def __call__(self):
        return self.run()

    def run(self):
        fn = self._fn
        while True:
            _gb_host('atomic.begin')
            try:
                value = fn()
            except BaseException:
                _gb_host('atomic.abort')
                raise
            if _gb_host('atomic.commit') is True:
                return value


def configGet(*args):
    if len(args) != 1:
        raise GearsError('get_config function must get a single key input')
    if not isinstance(args[0], str):
        raise GearsError('get_config key must be a string')
    return _gb_host('configGet', _gb_dumps([args[0]]))


def gearsConfigGet(key, default=None):
    value = configGet(key)
    return value if value is not None else default


def hashtag():
    return _gb_host('hashtag')


_GB_LEVELS = ('debug', 'verbose', 'notice', 'warning')


def log(*args, **kwargs):
    if 'level' in kwargs:
        args = args + (kwargs['level'],)
    if len(args) == 0 or len(args) > 2:
        raise GearsError('log function must get a log message as input')
    message = args[0]
    level = args[1] if len(args) == 2 else 'notice'
    if len(args) == 2 and message in _GB_LEVELS and isinstance(level, str) and level not in _GB_LEVELS:
        # RedisGears' legacy form log(level, message): accepted, with a deprecation warning.
        message, level = level, message
        _gb_host('log', _gb_dumps(['warning', 'log(level, message) is deprecated, use log(message, level)']))
    if not isinstance(message, str):
        raise GearsError('Log message must be a string')
    if not isinstance(level, str):
        raise GearsError('Log level must be a sting (debug/verbose/notice/warning)')
    if level not in _GB_LEVELS:
        raise GearsError('Log level should be one of the following : debug,verbose,notice,warning')
    _gb_host('log', _gb_dumps([level, message]))


def isAsyncAllow():
    return _gb_state['async_allowed']


def flat_error(*args):
    if len(args) != 1:
        raise GearsError('not enough arguments for time flat error')
    raise _GbFlatError(str(args[0]))


def call_next(*args):
    raise GearsError('Can not get CommandHook ctx')


def override_reply(*args):
    raise GearsError('Can not get command ctx')


def get_command(*args):
    raise GearsError('Can not get command ctx')


# ---- coroutines: a small scheduler driven by the host -------------------------------------------
# async host calls return a call number; a coroutine awaiting one is parked until the engine
# answers it (__gearbox_call('answer', ...)), then resumed by the next 'step'.

class _GbHostWait:
    """An awaitable async host call."""

    def __init__(self, reply_or_call):
        # A string is an immediate (stop) reply; a number waits for the host's answer.
        self.call = reply_or_call if isinstance(reply_or_call, int) else None
        self.reply = None if self.call is not None else reply_or_call

    def __await__(self):
        if self.reply is None:
            yield self
        return _gb_decode(self.reply)

    __iter__ = __await__


def _gb_host_async(op, payload='[]'):
    return _GbHostWait(_gb_raw_start(op, payload))


class _GbFuture:
    """createFuture()'s future: awaited inside a coroutine, settled with setFutureResults/Exception."""

    def __init__(self):
        self.done = False
        self.ok = True
        self.value = None
        self.waiters = []

    def _settle(self, ok, value):
        if self.done:
            return
        self.done = True
        self.ok = ok
        self.value = value
        for task in self.waiters:
            _gb_tasks_ready.append(task)
        self.waiters = []

    def set_result(self, value):
        self._settle(True, value)

    def set_exception(self, error):
        self._settle(False, error)

    def _abandoned(self):
        return GearsError('the future was never set: no pending work was left that could set it')

    def result(self):
        if not self.ok:
            raise self.value
        return self.value

    def __await__(self):
        if not self.done:
            yield self
        if not self.ok:
            raise self.value
        return self.value

    __iter__ = __await__


class _GbTask:
    def __init__(self, coro, done):
        self.coro = coro
        self.done = done
        self.send = None
        self.throw = None


_gb_tasks_ready = []
_gb_tasks_waiting = {}
_gb_tasks_live = [0]


def _gb_spawn(coro, done):
    task = _GbTask(coro, done)
    _gb_tasks_live[0] += 1
    _gb_tasks_ready.append(task)
    return task


def _gb_step_task(task):
    try:
        if task.throw is not None:
            error = task.throw
            task.throw = None
            yielded = task.coro.throw(error)
        else:
            value = task.send
            task.send = None
            yielded = task.coro.send(value)
    except StopIteration as stop:
        _gb_tasks_live[0] -= 1
        task.done(True, stop.value if stop.args else None)
        return
    except Exception as error:
        _gb_tasks_live[0] -= 1
        task.done(False, error)
        return
    if isinstance(yielded, _GbHostWait):
        if yielded.reply is not None:
            _gb_tasks_ready.append(task)
        else:
            yielded.task = task
            _gb_tasks_waiting[yielded.call] = yielded
    elif isinstance(yielded, _GbFuture):
        if yielded.done:
            _gb_tasks_ready.append(task)
        else:
            yielded.waiters.append(task)
            _gb_blocked.append(yielded)
    else:
        # A bare `yield` / sleep(0)-style yield: run again after the others.
        _gb_tasks_ready.append(task)


_gb_blocked = []


def _gb_run_ready():
    while True:
        while _gb_tasks_ready:
            _gb_step_task(_gb_tasks_ready.pop(0))
        if _gb_tasks_live[0] == 0 or _gb_tasks_waiting:
            return
        # Every live coroutine waits on a future, and nothing that could settle one is pending
        # (no host reply to come): those futures are abandoned; their waiters fail instead of hanging.
        blocked = [f for f in _gb_blocked if not f.done]
        _gb_blocked[:] = []
        if not blocked:
            return
        for f in blocked:
            f._settle(False, f._abandoned())


def _gb_answer(call, reply):
    wait = _gb_tasks_waiting.pop(call, None)
    if wait is None:
        return
    wait.reply = reply
    _gb_tasks_ready.append(wait.task)


def _gb_is_coroutine(value):
    return type(value).__name__ in ('generator', 'coroutine') and hasattr(value, 'send')


def createFuture():
    return _GbFuture()


def setFutureResults(f, res):
    # A second settle, or something that is not a future, is silently ignored (RedisGears).
    if isinstance(f, _GbFuture):
        f.set_result(res)


def setFutureException(f, ex):
    if isinstance(f, _GbFuture):
        f.set_exception(ex if isinstance(ex, Exception) else Exception(str(ex)))


def _gb_continue(target, ok, value):
    if target is None:
        return
    if isinstance(target, _GbFuture):
        target._settle(ok, value)
        return
    try:
        if ok:
            target.continueRun(value)
        else:
            target.continueFailed(value if isinstance(value, str) else _gb_message(value))
    except Exception as error:
        _gb_host('log', _gb_dumps(['warning', 'runCoroutine: continuing the future failed: ' + _gb_message(error)]))


async def _gb_delayed(cr, delay):
    if delay:
        await _gb_host_async('sleep', _gb_dumps([delay * 1000]))
    return await cr


def runCoroutine(cr, f=None, delay=0):
    if not _gb_is_coroutine(cr):
        raise GearsError('runCoroutine expects a coroutine')
    if not isinstance(delay, (int, float)) or delay < 0:
        raise GearsError('runCoroutine delay must be a non-negative number of seconds')
    _gb_spawn(_gb_delayed(cr, delay), lambda ok, value: _gb_continue(f, ok, value))


for _gb_name in ('execute', 'atomic', 'configGet', 'gearsConfigGet', 'hashtag', 'log', 'isAsyncAllow', 'flat_error',
                 'call_next', 'override_reply', 'get_command', 'createFuture', 'setFutureResults',
                 'setFutureException', 'runCoroutine'):
    _gb_export(_gb_name, globals()[_gb_name])
# RedisGears' deprecated spellings.
_gb_export('ConfigGet', configGet)
_gb_export('GearsConfigGet', gearsConfigGet)
_gb_export('Log', log)
