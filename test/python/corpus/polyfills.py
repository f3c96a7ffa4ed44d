# What RedisGears scripts commonly use and MicroPython lacks, polyfilled by the prelude.
import json
from contextlib import contextmanager, suppress
import traceback
import re
from collections import Counter, defaultdict
from itertools import groupby, product

assert json.dumps({'b': 1, 'a': [1, 2]}, sort_keys=True) == '{"a": [1, 2], "b": 1}'
assert json.dumps({'a': [1, 2]}, indent=2) == '{\n  "a": [\n    1,\n    2\n  ]\n}'
assert json.loads('{"x": 1}') == {'x': 1}

events = []


@contextmanager
def tagged(name):
    events.append('enter ' + name)
    try:
        yield name.upper()
    finally:
        events.append('exit ' + name)


with tagged('a') as value:
    assert value == 'A'
try:
    with tagged('b'):
        raise ValueError('inside')
except ValueError:
    pass
assert events == ['enter a', 'exit a', 'enter b', 'exit b'], events
with suppress(KeyError):
    {}['missing']

try:
    1 / 0
except ZeroDivisionError as e:
    text = traceback.format_exc(e)
assert text.startswith('Traceback (most recent call last):') and 'ZeroDivisionError' in text, text

assert re.findall('[a-z]+', 'ab 12 cd') == ['ab', 'cd']
assert re.findall('([a-z])([0-9])', 'a1 b2') == [('a', '1'), ('b', '2')]
assert re.split(',', 'a,b,c') == ['a', 'b', 'c']

c = Counter('abracadabra')
assert c['a'] == 5 and c['z'] == 0
assert c.most_common(1) == [('a', 5)]
assert [(k, len(list(g))) for k, g in groupby('aaabbc')] == [('a', 3), ('b', 2), ('c', 1)]
assert list(product('ab', [1, 2])) == [('a', 1), ('a', 2), ('b', 1), ('b', 2)]
assert format(3.14159, '.2f') == '3.14'
assert RecursionError is RuntimeError
from typing import List, Dict
execute('SET', '{py}:polyfills', 'ok')
