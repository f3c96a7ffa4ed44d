# gearbox guest prelude (Python), part 3: what RedisGears scripts commonly use and MicroPython
# lacks (notes/python-wasm.md §5), as modules the user's `import` finds first (sys.modules), and
# builtins of the user's globals. What cannot be polyfilled is listed in README ("Python guests").


class _GbModule:
    """A module-like namespace (MicroPython cannot create module instances)."""

    def __init__(self, name, **members):
        self.__name__ = name
        for key in members:
            setattr(self, key, members[key])


def _gb_module_from(name, base, **overrides):
    """A copy of builtin module `base` with some members replaced or added."""
    mod = _GbModule(name)
    for key in dir(base):
        if not key.startswith('__'):
            setattr(mod, key, getattr(base, key))
    for key in overrides:
        setattr(mod, key, overrides[key])
    return mod


# ---- contextlib ---------------------------------------------------------------------------------

class _GbGeneratorContextManager:
    def __init__(self, gen):
        self.gen = gen

    def __enter__(self):
        try:
            return next(self.gen)
        except StopIteration:
            raise RuntimeError("generator didn't yield")

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                next(self.gen)
            except StopIteration:
                return False
            raise RuntimeError("generator didn't stop")
        try:
            self.gen.throw(exc)
        except StopIteration:
            return True
        except BaseException as raised:
            if raised is exc:
                return False
            raise
        raise RuntimeError("generator didn't stop after throw()")


def _gb_contextmanager(fn):
    def helper(*args, **kwargs):
        return _GbGeneratorContextManager(fn(*args, **kwargs))
    return helper


class _GbSuppress:
    def __init__(self, *exceptions):
        self.exceptions = exceptions

    def __enter__(self):
        return None

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, self.exceptions)


class _GbNullContext:
    def __init__(self, value=None):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *args):
        return False


# ---- traceback ----------------------------------------------------------------------------------
# MicroPython has no sys.exc_info(): the functions take the exception (format_exc(e)); without one
# they answer as CPython does outside an except block.

def _gb_format_exception(etype=None, value=None, tb=None):
    if value is None and isinstance(etype, BaseException):
        value = etype
    if value is None:
        return ['NoneType: None\n']
    return [line + '\n' for line in _gb_traceback(value).split('\n')]


def _gb_format_exc(e=None):
    return ''.join(_gb_format_exception(e))


def _gb_print_exc(e=None):
    print(_gb_format_exc(e), end='')


# ---- json: indent and sort_keys -------------------------------------------------------------------
import json as _gb_json_native


def _gb_json_encode(value, indent, sort_keys, separators, default, level):
    item_sep, key_sep = separators
    if isinstance(value, dict):
        if not value:
            return '{}'
        keys = list(value.keys())
        if sort_keys:
            keys = sorted(keys)
        parts = []
        for k in keys:
            if isinstance(k, str):
                name = k
            elif k is None or isinstance(k, (bool, int, float)):
                name = _gb_json_native.dumps(k)
            else:
                raise TypeError('keys must be str, int, float, bool or None')
            parts.append(_gb_json_native.dumps(name) + key_sep + _gb_json_encode(value[k], indent, sort_keys, separators, default, level + 1))
        return _gb_json_join('{', '}', parts, indent, item_sep, level)
    if isinstance(value, (list, tuple)):
        if not value:
            return '[]'
        parts = [_gb_json_encode(v, indent, sort_keys, separators, default, level + 1) for v in value]
        return _gb_json_join('[', ']', parts, indent, item_sep, level)
    if value is None or isinstance(value, (str, bool, int, float)):
        return _gb_json_native.dumps(value)
    if default is not None:
        return _gb_json_encode(default(value), indent, sort_keys, separators, default, level)
    raise TypeError('Object of type %s is not JSON serializable' % type(value).__name__)


def _gb_json_join(open_, close, parts, indent, item_sep, level):
    if indent is None:
        return open_ + item_sep.join(parts) + close
    pad = ' ' * indent if isinstance(indent, int) else indent
    inner = '\n' + pad * (level + 1)
    return open_ + inner + (item_sep.rstrip(' ') + inner).join(parts) + '\n' + pad * level + close


def _gb_json_dumps(obj, *args, indent=None, sort_keys=False, separators=None, default=None, **kwargs):
    if indent is None and not sort_keys and default is None:
        if separators is None:
            return _gb_json_native.dumps(obj)
        return _gb_json_native.dumps(obj, separators=separators)
    if separators is None:
        separators = (',', ': ') if indent is not None else (', ', ': ')
    return _gb_json_encode(obj, indent, sort_keys, tuple(separators), default, 0)


# ---- re: findall, split, finditer -------------------------------------------------------------
import re as _gb_re_native


def _gb_re_compiled(pattern):
    return _gb_re_native.compile(pattern) if isinstance(pattern, (str, bytes)) else pattern


def _gb_re_groups(m):
    groups = []
    i = 1
    while True:
        try:
            groups.append(m.group(i))
        except IndexError:
            return groups
        i += 1


def _gb_re_finditer(pattern, string, flags=0):
    regex = _gb_re_compiled(pattern)
    pos = 0
    n = len(string)
    while pos <= n:
        m = regex.search(string[pos:]) if pos else regex.search(string)
        if m is None:
            return
        whole = m.group(0)
        yield m
        # MicroPython's match objects have no end(): find where this match ended.
        start = string.find(whole, pos)
        pos = (start if start >= 0 else pos) + (len(whole) if whole else 1)


def _gb_re_findall(pattern, string, flags=0):
    out = []
    for m in _gb_re_finditer(pattern, string, flags):
        groups = _gb_re_groups(m)
        if not groups:
            out.append(m.group(0))
        elif len(groups) == 1:
            out.append(groups[0] if groups[0] is not None else '')
        else:
            out.append(tuple(g if g is not None else '' for g in groups))
    return out


def _gb_re_split(pattern, string, maxsplit=0, flags=0):
    return _gb_re_compiled(pattern).split(string, maxsplit) if maxsplit else _gb_re_compiled(pattern).split(string)


# ---- collections.Counter, itertools.groupby / product -------------------------------------------
import collections as _gb_collections_native
import itertools as _gb_itertools_native


class Counter(dict):
    def __init__(self, iterable=None, **kwargs):
        super().__init__()
        self.update(iterable, **kwargs)

    def __missing__(self, key):
        return 0

    def __getitem__(self, key):
        return super().get(key, 0)

    def update(self, iterable=None, **kwargs):
        if iterable is not None:
            if isinstance(iterable, dict):
                for k in iterable:
                    self[k] = self[k] + iterable[k]
            else:
                for k in iterable:
                    self[k] = self[k] + 1
        for k in kwargs:
            self[k] = self[k] + kwargs[k]

    def most_common(self, n=None):
        items = sorted(self.items(), key=lambda kv: -kv[1])
        return items if n is None else items[:n]

    def elements(self):
        for k in self:
            for _ in range(self[k]):
                yield k

    def total(self):
        return sum(self.values())

    def __add__(self, other):
        out = Counter(self)
        out.update(other)
        return Counter({k: v for k, v in out.items() if v > 0})


def _gb_groupby(iterable, key=None):
    keyfunc = key if key is not None else (lambda x: x)
    marker = object()
    current = marker
    group = []
    for item in iterable:
        k = keyfunc(item)
        if current is not marker and k != current:
            yield current, iter(group)
            group = []
        current = k
        group.append(item)
    if current is not marker:
        yield current, iter(group)


def _gb_product(*iterables, repeat=1):
    pools = [list(p) for p in iterables] * repeat
    result = [[]]
    for pool in pools:
        result = [x + [y] for x in result for y in pool]
    for prod in result:
        yield tuple(prod)


def _gb_format(value, spec=''):
    return ('{:' + spec + '}').format(value)


class _GbAny:
    def __getitem__(self, item):
        return self

    def __call__(self, *args, **kwargs):
        return self


_GB_ANY = _GbAny()

_gb_sys.modules['contextlib'] = _GbModule('contextlib', contextmanager=_gb_contextmanager, suppress=_GbSuppress, nullcontext=_GbNullContext)
_gb_sys.modules['traceback'] = _GbModule('traceback', format_exc=_gb_format_exc, format_exception=_gb_format_exception, print_exc=_gb_print_exc)
_gb_sys.modules['json'] = _gb_module_from('json', _gb_json_native, dumps=_gb_json_dumps)
_gb_sys.modules['re'] = _gb_module_from('re', _gb_re_native, findall=_gb_re_findall, split=_gb_re_split, finditer=_gb_re_finditer)
_gb_sys.modules['collections'] = _gb_module_from('collections', _gb_collections_native, Counter=Counter)
_gb_sys.modules['itertools'] = _gb_module_from('itertools', _gb_itertools_native, groupby=_gb_groupby, product=_gb_product)
_gb_sys.modules['typing'] = _GbModule('typing', Any=_GB_ANY, List=_GB_ANY, Dict=_GB_ANY, Optional=_GB_ANY, Tuple=_GB_ANY,
                                       Union=_GB_ANY, Callable=_GB_ANY, Iterable=_GB_ANY, Set=_GB_ANY, TYPE_CHECKING=False)

# ---- asyncio on the prelude's scheduler ----------------------------------------------------------
# MicroPython's own asyncio loop is not the one that runs gearbox coroutines: the names scripts use
# are mapped onto the prelude's scheduler (sleep waits on the host; gather awaits in order).

class _GbYield:
    def __await__(self):
        yield None

    __iter__ = __await__


async def _gb_asyncio_sleep(delay, result=None):
    if delay and delay > 0:
        await _gb_host_async('sleep', _gb_dumps([delay * 1000]))
    else:
        await _GbYield()
    return result


async def _gb_asyncio_gather(*aws, return_exceptions=False):
    results = []
    for aw in aws:
        try:
            results.append(await aw)
        except Exception as error:
            if not return_exceptions:
                raise
            results.append(error)
    return results


def _gb_asyncio_create_task(coro):
    future = _GbFuture()
    _gb_spawn(coro, future._settle)
    return future


_gb_sys.modules['asyncio'] = _GbModule('asyncio', sleep=_gb_asyncio_sleep, gather=_gb_asyncio_gather,
                                        create_task=_gb_asyncio_create_task, ensure_future=_gb_asyncio_create_task,
                                        Future=_GbFuture)

_gb_export('RecursionError', RuntimeError)
_gb_export('format', _gb_format)
del Counter
