# An uncaught exception: the error reply is a RedisGears-like traceback with the script's lines.
def fetch_data():
    return notexists

fetch_data()
