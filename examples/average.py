# Average temperature per city, the Python twin of average.js (same answer).
#
#   gearbox run examples/average.py --load examples/data/weather.csv
#   gearbox run examples/average.py --load examples/data/weather.csv --local-cluster
#
# The sums are kept in tenths of a degree, as integers (rounded half up, as JavaScript's
# Math.round), so the result does not depend on the order the shards add them up. sort() sorts
# descending by default in RedisGears, and flatmap emits last to first: the records come out
# ascending.
import math


def tenths(record):
    return math.floor(float(record['value']['temperature_c']) * 10 + 0.5)


def line(record):
    total, days = record['value']
    return '%s %.2f °C over %d days' % (record['key'], total / 10 / days, days)


GB('KeysReader') \
    .filter(lambda record: record['type'] == 'hash') \
    .aggregateby(
        lambda record: record['value']['city'],
        (0, 0),
        lambda city, acc, record: (acc[0] + tenths(record), acc[1] + 1),
        lambda city, acc, other: (acc[0] + other[0], acc[1] + other[1])) \
    .map(line) \
    .sort() \
    .run('weather:*')
