# Thin wrappers over npm scripts, so `make <target>` and `npm run <target>` agree.
.PHONY: setup demo test bench check

setup:
	bash scripts/setup.sh

demo: setup
	npm run demo

test: setup
	npm test

bench: setup
	npm run bench

check:
	npm run check
