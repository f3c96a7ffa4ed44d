# gearbox guest prelude (Python), part 2: GearsBuilder / GB with RedisGears 1.2's semantics.
#
# The builder's semantics live in the host (host/gears/flow.ts): argument checks with RedisGears'
# error texts, the desugaring of count/avg/groupby/... into primitive steps, stage cutting. This
# file is what is Python about it (guest/js/20_gears.js is the JavaScript twin):
#   - the semantics: flatmap explodes lists only and emits them last to first, group keys are
#     repr()'d when not str, an aggregate's falsy accumulator is replaced by a deep copy of its
#     zero, convertToStr is str(), sort() is Python's sorted() (descending by default, so the
#     reversed flatmap yields ascending records), records are dicts;
#   - a thin builder: each call describes its arguments (type, literal, or an index into _gb_held)
#     and asks the host to check them (`gears.op`); run() sends the flow (`gears.run`);
#   - the kernel: one coroutine per execution that runs the plan's primitive steps over reader
#     batches. Reader batches are read with async host calls: MicroPython collects garbage only
#     when control returns to the host, so a long run frees memory between batches.
import copy as _gb_copy

_gb_held = []
_GB_MISSING = object()
_GB_MAX_SAFE = 9007199254740991


def _gb_describe(value):
    """One argument for the host (host/gears/flow.ts ArgDesc)."""
    if value is _GB_MISSING:
        return {'t': 'missing'}
    i = len(_gb_held)
    _gb_held.append(value)
    if value is None:
        return {'t': 'null', 'i': i}
    if isinstance(value, bool):
        return {'t': 'boolean', 'i': i, 'v': value, 'f': not value}
    if isinstance(value, str):
        return {'t': 'string', 'i': i, 'v': value, 'f': value == ''}
    if isinstance(value, int):
        v = value if -_GB_MAX_SAFE <= value <= _GB_MAX_SAFE else float(value)
        return {'t': 'number', 'i': i, 'v': v, 'f': value == 0}
    if isinstance(value, float):
        if value != value:
            v = 'NaN'
        elif value in (float('inf'), float('-inf')):
            v = 'Infinity' if value > 0 else '-Infinity'
        else:
            v = value
        return {'t': 'number', 'i': i, 'v': v, 'f': value == 0}
    if callable(value):
        return {'t': 'function', 'i': i, 'name': getattr(value, '__name__', '') or ''}
    if isinstance(value, (dict, list, tuple, set, frozenset, bytes, bytearray)):
        return {'t': 'object', 'i': i, 'f': len(value) == 0}
    return {'t': 'other', 'i': i, 'f': not value}


def _gb_describe_items(value):
    d = _gb_describe(value)
    if value is _GB_MISSING or value is None or isinstance(value, (int, float, bool)) or callable(value):
        return d
    try:
        items = []
        for item in value:
            if len(items) >= 1000:
                raise GearsError('register(): an iterable option has more than 1000 elements')
            items.append(_gb_describe(item))
        d['items'] = items
    except TypeError:
        pass
    return d


_GB_RUN_OPTIONS = ('mode', 'noScan', 'readValue', 'count', 'patternGenerator', 'fromId', 'convertToStr', 'collect')
_GB_REGISTER_OPTIONS = ('prefix', 'regex', 'mode', 'onRegistered', 'eventTypes', 'keyTypes', 'readValue', 'commands',
                        'batch', 'duration', 'onFailedPolicy', 'onFailedRetryInterval', 'trimStream', 'trigger', 'hook',
                        'keyprefix', 'inorder', 'convertToStr', 'collect')
_GB_ITERABLE_OPTIONS = ('eventTypes', 'keyTypes', 'commands')


def _gb_options(kwargs, names):
    """Keyword arguments as the host's options object (unknown ones are ignored, as RedisGears does)."""
    d = _gb_describe(dict(kwargs))
    d['f'] = False
    fields = {}
    for name in names:
        value = kwargs.get(name, _GB_MISSING)
        fields[name] = _gb_describe_items(value) if name in _GB_ITERABLE_OPTIONS else _gb_describe(value)
    d['fields'] = fields
    return d


class GearsBuilder:
    """GearsBuilder(reader='KeysReader', defaultArg='*', desc=None): a batch flow (spec §2)."""

    def __init__(self, reader='KeysReader', defaultArg='*', desc=None):
        self._gb_builder = [_gb_describe(reader), _gb_describe(defaultArg), _gb_describe(desc)]
        _gb_host('gears.builder', _gb_dumps({'args': self._gb_builder}))
        self._gb_ops = []

    def _gb_op(self, op, *values):
        args = [_gb_describe(v) for v in values]
        _gb_host('gears.op', _gb_dumps({'op': op, 'args': args}))
        self._gb_ops.append({'op': op, 'args': args})
        return self

    def map(self, f):
        return self._gb_op('map', f)

    def flatmap(self, f):
        return self._gb_op('flatmap', f)

    def foreach(self, f):
        return self._gb_op('foreach', f)

    def filter(self, f):
        return self._gb_op('filter', f)

    def accumulate(self, f):
        return self._gb_op('accumulate', f)

    def localgroupby(self, extractor, reducer):
        return self._gb_op('localgroupby', extractor, reducer)

    def groupby(self, extractor, reducer):
        return self._gb_op('groupby', extractor, reducer)

    def batchgroupby(self, extractor, reducer):
        return self._gb_op('batchgroupby', extractor, reducer)

    def collect(self):
        return self._gb_op('collect')

    def repartition(self, extractor):
        return self._gb_op('repartition', extractor)

    def limit(self, length, start=0):
        return self._gb_op('limit', length, start)

    def aggregate(self, zero, seqOp, combOp):
        return self._gb_op('aggregate', zero, seqOp, combOp)

    def aggregateby(self, extractor, zero, seqOp, combOp):
        return self._gb_op('aggregateby', extractor, zero, seqOp, combOp)

    def count(self):
        return self._gb_op('count')

    def countby(self, extractor=_GB_MISSING):
        return self._gb_op('countby', extractor)

    def avg(self, extractor=_GB_MISSING):
        return self._gb_op('avg', extractor)

    def distinct(self):
        return self._gb_op('distinct')

    def sort(self, reverse=_GB_MISSING):
        return self._gb_op('sort', reverse)

    def run(self, arg=None, convertToStr=True, collect=True, **kwargs):
        kwargs['convertToStr'] = convertToStr
        kwargs['collect'] = collect
        args = [_gb_describe(arg), _gb_options(kwargs, _GB_RUN_OPTIONS)]
        # The host checks and compiles the flow now: later calls on this builder do not change the run.
        _gb_host('gears.run', _gb_dumps({'lang': 'python', 'builder': self._gb_builder, 'ops': list(self._gb_ops), 'args': args}))
        _gb_state['outcome'] = _gb_run_outcome

    def register(self, prefix=_GB_MISSING, convertToStr=True, collect=True, **kwargs):
        kwargs['convertToStr'] = convertToStr
        kwargs['collect'] = collect
        args = [_gb_describe(prefix), _gb_options(kwargs, _GB_REGISTER_OPTIONS)]
        return _gb_host('gears.register', _gb_dumps({'lang': 'python', 'builder': self._gb_builder, 'ops': list(self._gb_ops), 'args': args}))


GB = GearsBuilder
_gb_export('GearsBuilder', GearsBuilder)
_gb_export('GB', GearsBuilder)


# ---- the RedisGears semantics -------------------------------------------------------------------

def _gb_key_of(value):
    return value if isinstance(value, str) else repr(value)


def _gb_key_value(key, value):
    return {'key': key, 'value': value}


def _gb_avg_seq(a, r):
    return (a[0] + r, a[1] + 1)


def _gb_avg_comb(a, r):
    return (a[0] + r[0], a[1] + r[1])


def _gb_distinct_add(a, r):
    a[repr(r)] = r
    return a


def _gb_distinct_merge(a, r):
    for k in r:
        if k not in a:
            a[k] = r[k]
    return a


def _gb_sort_add(a, r):
    a.append(r)
    return a


def _gb_sort_merge(a, r):
    a.extend(r)
    return a


_GB_BUILTINS = {
    'count': lambda a, r: 1 + (a if a else 0),
    'countSum': lambda a, r: r + (a if a else 0),
    'countbySeq': lambda k, a, r: 1 + a,
    'countbyComb': lambda k, a, r: r + a,
    'identity': lambda x: x,
    'toNumber': lambda x: float(x),
    'avgSeq': _gb_avg_seq,
    'avgComb': _gb_avg_comb,
    'avgFinal': lambda x: x[0] / x[1],
    'distinctAdd': _gb_distinct_add,
    'distinctMerge': _gb_distinct_merge,
    'distinctValues': lambda a: list(a.values()),
    'sortAdd': _gb_sort_add,
    'sortMerge': _gb_sort_merge,
    'recordKey': lambda r: r['key'],
}


# ---- reader batches -----------------------------------------------------------------------------

def _gb_pairs(flat):
    out = {}
    for i in range(0, len(flat) - 1, 2):
        out[flat[i]] = flat[i + 1]
    return out


# RedisGears' KeysReader reads values of strings, hashes and lists only; others are None.
_GB_VALUE_TYPES = ('string', 'hash', 'list')


def _gb_reader_records(batch):
    """Host reader batches (host/gears/readers.ts): records, or KeysReader columns."""
    if batch is None or isinstance(batch, list):
        return batch
    out = []
    if 'n' in batch:
        for k in batch['n']:
            out.append({'key': k, 'event': None})
        return out
    if 's' in batch:
        page = batch['s']
        keys = page['k']
        values = page['v']
        types = page.get('t')
        for i in range(len(keys)):
            t = 'string' if types is None else types[i]
            if t == 'none':
                continue
            v = values[i]
            if t == 'hash':
                v = _gb_pairs(v)
            elif t not in _GB_VALUE_TYPES:
                v = None
            if t == 'stream':
                t = 'unknown'
            elif t not in ('string', 'hash', 'list', 'set', 'zset'):
                t = 'module'
            out.append({'key': keys[i], 'value': v, 'type': t, 'event': None})
        return out
    keys = batch['k']
    values = batch['v']
    types = batch['t']
    for i in range(len(keys)):
        t = types if isinstance(types, str) else types[i]
        v = values[i] if t in _GB_VALUE_TYPES else None
        if t == 'stream':
            t = 'unknown'
        out.append({'key': keys[i], 'value': v, 'type': t, 'event': None})
    return out


class _GbHostSource:
    def __init__(self, reader):
        self.reader = reader
        self.first = True

    async def next(self):
        if self.first:
            self.first = False
            opened = dict(self.reader['open'])
            pg = self.reader.get('patternGenerator')
            if pg is not None:
                generated = _gb_held[pg]()
                if not isinstance(generated, (list, tuple)) or not generated or not isinstance(generated[0], str):
                    raise GearsError('patternGenerator must return (pattern, noScan)')
                opened['pattern'] = generated[0]
                opened['noScan'] = len(generated) > 1 and generated[1] is True
            payload = _gb_dumps({'open': opened})
        else:
            payload = '{}'
        try:
            batch = await _gb_host_async('gears.read', payload)
        except GearsError as e:
            # Reader errors (Redis's text) are reported verbatim, as RedisGears does.
            raise _GbFlatError(str(e))
        return _gb_reader_records(batch)


class _GbRoutedSource:
    async def next(self):
        return await _gb_host_async('gears.read', '{}')


class _GbGeneratorSource:
    def __init__(self, fn, size):
        self.fn = fn
        self.size = size
        self.it = None
        self.done = False
        self.failure = None

    async def next(self):
        if self.done:
            return None
        if self.failure is not None:
            error = self.failure
            self.failure = None
            self.done = True
            raise error
        if self.it is None:
            produced = self.fn()
            if produced is None:
                self.done = True
                return None
            self.it = iter(produced)
        batch = []
        while len(batch) < self.size:
            try:
                batch.append(next(self.it))
            except StopIteration:
                self.done = True
                break
            except Exception as error:
                if not batch:
                    raise
                self.failure = error
                break
        return batch if batch else None


class _GbEventSource:
    def __init__(self, records):
        self.records = records

    async def next(self):
        records = self.records
        self.records = None
        return records


# ---- the kernel ---------------------------------------------------------------------------------

class _GbSink:
    def __init__(self, info):
        self.size = info.get('batchSize') or 1000
        self.records = []
        self.errors = []

    def add_error(self, error):
        try:
            self.errors.append(_gb_format_error(error))
        except BaseException:
            self.errors.append('Error: (unprintable error)')
        if len(self.errors) >= self.size:
            self.flush(False)

    def output(self, batch):
        self.records.extend(batch)
        if len(self.records) >= self.size:
            self.flush(False)

    def flush(self, final, profile=None):
        records, errors = self.records, self.errors
        self.records, self.errors = [], []
        wired = []
        for r in records:
            try:
                wired.append(_gb_wire(r))
            except Exception as error:
                errors.append(_gb_format_error(error))
        payload = {'r': wired, 'e': errors}
        if final:
            payload['done'] = True
            payload['profile'] = profile
        _gb_host('gears.emit', _gb_dumps(payload))


_GB_RESET = object()


def _gb_fn(ref):
    if 'b' in ref:
        if ref['b'] == 'sortList':
            reverse = ref.get('reverse') is True
            return lambda lst: sorted(lst, reverse=reverse)
        return _GB_BUILTINS[ref['b']]
    return _gb_held[ref['i']]


def _gb_resetter(zero):
    if zero is None:
        return lambda a: a
    if 'i' in zero:
        value = _gb_held[zero['i']]
    elif 'v' in zero:
        value = zero['v']
        if isinstance(value, list) and len(value) == 2 and value == [0, 0]:
            value = (0, 0)  # avg's zero: RedisGears' tuple
    else:
        value = None
    return lambda a: a if a else _gb_copy.deepcopy(value)


class _GbStep:
    pass


def _gb_make_steps(info, sink):
    steps = []
    for p in info['steps']:
        st = _GbStep()
        st.k = p['k']
        st.finish = None
        st.full = None
        k = p['k']
        if k in ('map', 'flatmap', 'filter', 'foreach'):
            st.f = _gb_fn(p['f'])
        elif k == 'extract':
            st.f = _gb_fn(p['ex'])
        elif k == 'limit':
            st.start = p['start']
            st.end = p['end']
            st.seen = 0
        elif k == 'accumulate':
            f = _gb_fn(p['f'])
            zero = p.get('zero')
            if zero is None:
                st.f = f
            else:
                reset = _gb_resetter(zero)
                st.f = (lambda f, reset: lambda a, r: f(reset(a), r))(f, reset)
            st.acc = None
            st.has = False
        elif k in ('localgroupby', 'reducebykey'):
            red = _gb_fn(p['red'])
            zero = p.get('zero')
            by_value = p.get('value') is True
            if zero is None and not by_value:
                st.red = red
            else:
                reset = _gb_resetter(zero)
                st.red = (lambda red, reset, by_value: lambda key, a, r: red(key, reset(a), r['value'] if by_value else r))(red, reset, by_value)
            if k == 'localgroupby':
                st.ex = _gb_fn(p['ex'])
            st.groups = {}
            st.order = []
        elif k == 'groupbykey':
            st.red = _gb_fn(p['red'])
            st.lists = {}
            st.order = []
        steps.append(st)
    return steps


# ---- gearsFuture: a step's async record (RedisGears' gearsFutureCtx) ------------------------------

class _GbStepFuture(_GbFuture):
    def __init__(self):
        super().__init__()
        self.returned = False

    def continueRun(self, value=None):
        self._continue(True, value)

    def continueFailed(self, error=None):
        self._continue(False, error if isinstance(error, BaseException) else _GbFlatError(str(error)))

    def _continue(self, ok, value):
        if self.done:
            raise GearsError('Can not continue with the same future twice')
        if not self.returned:
            raise GearsError('Can not handle future untill it returned from the callback')
        self._settle(ok, value)

    def _abandoned(self):
        return _GbFlatError('Async record did not called continue')


_gb_step_ctx = {'open': False, 'future': None}


def gearsFuture(*args):
    if args:
        raise GearsError('Future gets no arguments')
    if not _gb_step_ctx['open']:
        raise GearsError('Future object can only be created inside certain execution steps')
    if _gb_step_ctx['future'] is not None:
        raise GearsError('Can not create async record twice on the same step')
    f = _GbStepFuture()
    _gb_step_ctx['future'] = f
    return f


_gb_export('gearsFuture', gearsFuture)


def _gb_in_step(f, *args):
    """Calls a step callback where gearsFuture() may be created."""
    _gb_step_ctx['open'] = True
    _gb_step_ctx['future'] = None
    try:
        return f(*args)
    finally:
        _gb_step_ctx['open'] = False
        created = _gb_step_ctx['future']
        _gb_step_ctx['future'] = None
        if created is not None:
            created.returned = True


async def _gb_settle_step(v):
    """A step's value: a coroutine or a returned gearsFuture is awaited (the record is parked)."""
    if _gb_is_coroutine(v) or isinstance(v, _GbStepFuture):
        v = await v
    return v


async def _gb_call_step(f, *args):
    return await _gb_settle_step(_gb_in_step(f, *args))


async def _gb_apply(st, batch, sink):
    k = st.k
    out = []
    if k in ('map', 'flatmap', 'filter', 'foreach'):
        f = st.f
        for r in batch:
            try:
                v = await _gb_call_step(f, r)
            except Exception as error:
                sink.add_error(error)
                continue
            if k == 'map':
                out.append(v)
            elif k == 'flatmap':
                if isinstance(v, list):
                    for i in range(len(v) - 1, -1, -1):
                        out.append(v[i])
                else:
                    out.append(v)
            elif k == 'filter':
                if v:
                    out.append(r)
            else:
                out.append(r)
        return out
    if k == 'tostr':
        for r in batch:
            try:
                out.append(str(r))
            except Exception as error:
                sink.add_error(error)
        return out
    if k == 'extract':
        for r in batch:
            try:
                key = st.f(r)
                if _gb_is_coroutine(key):
                    key.close()
                    raise GearsError('coroutine are not allow on extractor')
                out.append([_gb_key_of(key), r])
            except Exception as error:
                sink.add_error(error)
        return out
    if k == 'unkey':
        return [pair[1] for pair in batch]
    if k == 'route':
        return batch
    if k == 'limit':
        end = st.end
        for r in batch:
            if st.seen >= st.start and (end is None or st.seen < end):
                out.append(r)
            st.seen += 1
        return out
    if k == 'accumulate':
        for r in batch:
            try:
                st.acc = await _gb_call_step(st.f, st.acc, r)
                st.has = True
            except Exception as error:
                sink.add_error(error)
                st.acc = None
                st.has = False
        return out
    if k in ('localgroupby', 'reducebykey'):
        for r in batch:
            if k == 'reducebykey':
                key, record = r[0], r[1]
            else:
                record = r
                try:
                    key = st.ex(record)
                    if _gb_is_coroutine(key):
                        key.close()
                        raise GearsError('coroutine are not allow on extractor')
                except Exception as error:
                    sink.add_error(error)
                    continue
                key = _gb_key_of(key)
            if key not in st.groups:
                st.order.append(key)
                current = None
            else:
                current = st.groups[key]
                if current is _GB_RESET:
                    current = None
            try:
                st.groups[key] = await _gb_call_step(st.red, key, current, record)
            except Exception as error:
                sink.add_error(error)
                st.groups[key] = _GB_RESET
        return out
    if k == 'groupbykey':
        for pair in batch:
            key = pair[0]
            if key not in st.lists:
                st.order.append(key)
                st.lists[key] = []
            st.lists[key].append(pair[1])
        return out
    raise GearsError('gears: unknown primitive step ' + str(k))


def _gb_finish_step(st, sink):
    k = st.k
    if k == 'accumulate':
        return [st.acc] if st.has else []
    if k in ('localgroupby', 'reducebykey'):
        return [_gb_key_value(key, st.groups[key]) for key in st.order if st.groups[key] is not _GB_RESET]
    if k == 'groupbykey':
        out = []
        for key in st.order:
            try:
                v = st.red(key, st.lists[key])
                if _gb_is_coroutine(v):
                    v.close()
                    raise GearsError('coroutine are not allow on reduce')
                out.append(_gb_key_value(key, v))
            except Exception as error:
                sink.add_error(error)
        return out
    return None


_GB_STATEFUL = ('accumulate', 'localgroupby', 'reducebykey', 'groupbykey')


async def _gb_push(steps, start, batch, sink):
    for i in range(start, len(steps)):
        if not batch:
            return
        batch = await _gb_apply(steps[i], batch, sink)
    if batch:
        sink.output(batch)


def _gb_can_stop(steps):
    for st in steps:
        if st.k == 'limit' and st.end is not None and st.seen >= st.end:
            return True
        if st.k in _GB_STATEFUL:
            return False
    return False


async def _gb_kernel(info, source):
    sink = _GbSink(info)
    steps = _gb_make_steps(info, sink)
    _gb_state['async_allowed'] = True
    while not _gb_can_stop(steps):
        try:
            batch = await source.next()
        except Exception as error:
            sink.add_error(error)
            break
        if batch is None:
            break
        await _gb_push(steps, 0, batch, sink)
    for i in range(len(steps)):
        records = _gb_finish_step(steps[i], sink)
        if records:
            await _gb_push(steps, i + 1, records, sink)
    sink.flush(True, {'steps': [0] * (info.get('displayCount') or 0), 'readMs': 0})


def _gb_source_of(info):
    reader = info.get('reader')
    if reader is None:
        return _GbRoutedSource()
    if reader.get('generator') is not None:
        return _GbGeneratorSource(_gb_held[reader['generator']], info.get('batchSize') or 1000)
    return _GbHostSource(reader)


def _gb_run_outcome():
    start = _gb_host('gears.start', '{}')
    if start.get('inPlace') is True:
        _gb_spawn(_gb_kernel(start, _gb_source_of(start)), _gb_kernel_done)
    return {'kind': 'run', 'id': start['id']}


_gb_kernel_failure = [None]


def _gb_kernel_done(ok, value):
    if not ok:
        _gb_kernel_failure[0] = value
