# Thin wrappers over npm scripts, so `make <target>` and `npm run <target>` agree.
.PHONY: setup demo test bench check

setup:
	npm ci
	@command -v redis-server >/dev/null || echo "redis-server is missing: apt-get install -y redis-server"

demo: setup
	npm run demo

test: setup
	npm test

bench: setup
	npm run bench

check:
	npm run check
