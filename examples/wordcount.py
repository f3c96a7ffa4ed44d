# Word count, the Python twin of wordcount.js (same answer): the 20 most frequent words of a text,
# one line of it per key.
#
#   gearbox run examples/wordcount.py --load examples/data/pride-and-prejudice.txt
#   gearbox run examples/wordcount.py --load examples/data/pride-and-prejudice.txt --local-cluster
#
# RedisGears' flatmap emits a list's elements last to first: the final flatmap hands the top 20
# reversed so that they come out highest first.


def words(text):
    """The words of a line: letters, with one inner apostrophe allowed (don't, bennet's)."""
    text = text.lower()
    out = []
    i = 0
    n = len(text)
    while i < n:
        if 'a' <= text[i] <= 'z':
            j = i
            while j < n and 'a' <= text[j] <= 'z':
                j += 1
            if j + 1 < n and text[j] == "'" and 'a' <= text[j + 1] <= 'z':
                j += 1
                while j < n and 'a' <= text[j] <= 'z':
                    j += 1
            out.append(text[i:j])
            i = j
        else:
            i += 1
    return out


def top20(records):
    """The 20 records with the highest counts; ties by word, so the answer is the same wherever it runs."""
    return sorted(records, key=lambda r: (-r['value'], r['key']))[:20]


GB('KeysReader') \
    .flatmap(lambda record: words(record['value'])) \
    .countby() \
    .aggregate([], lambda top, record: top20(top + [record]), lambda top, other: top20(top + other)) \
    .flatmap(lambda top: ['%s %d' % (r['key'], r['value']) for r in reversed(top)]) \
    .run('pride-and-prejudice:*')
