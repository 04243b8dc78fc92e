"""python -m notifier.web.locales: extract the pages' strings and merge them into every catalog."""

from notifier.web.locales import refresh

refresh()
