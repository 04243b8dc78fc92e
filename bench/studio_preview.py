"""The editor's preview latency: how long a marketer waits to see a message after choosing it, and after saving a
changed sentence, against the bare render of the same message measured in the same run.

    python bench/studio_preview.py [--repeat 30]

A campaign is made from the price-change starter through ``notifier.studio.service`` on a SQLite ledger of its
own (what the pages and the API call), translated to Indonesian and Brazilian Portuguese, then:

- preview: ``service.preview`` of every locale x send x channel, in turn (each builds its renderer: what a request
  costs);
- edit and preview: ``service.put_words`` with one paragraph changed (a new version: templates generated, catalogs
  updated, the gate run, this machine's copy synced), then the preview of that message;
- baseline: ``review.render_sample`` of the same messages on a renderer kept warm (the sender's cost of a variant
  it has not rendered yet, templates compiled).

Prints the median and the 90th percentile in milliseconds, and the ratios against the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.9 * (len(ordered) - 1))] * 1000


def _web(root: Path) -> Any:
    from notifier.config import Settings
    from notifier.ledger.db import make_engine, session_factory, upgrade
    from notifier.web.requests import Web

    engine = make_engine(f"sqlite:///{root / 'ledger.db'}")
    upgrade(engine)
    settings = Settings(studio_dir=root / "studio", campaigns_dir=root / "campaigns", outbox_dir=root / "outbox")
    return Web(settings, session_factory(engine), None, lambda: NOW)


def _translate(web: Any, campaign_id: str) -> None:
    from notifier.studio import service

    for locale in ("id", "pt-BR"):
        changes = {e.key: [f"[{locale}] {e.source[-1]}"] * max(1, len(e.plural_names))
                   for e in service.get_translations(web, campaign_id, locale)}
        service.put_translations(web, campaign_id, locale, changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="edits to time (each a new version)")
    args = parser.parse_args()

    from notifier.render import Renderer
    from notifier.review import render_sample, samples
    from notifier.studio import service, starter, store

    with tempfile.TemporaryDirectory(prefix="notifier-preview-bench-") as tmp:
        web = _web(Path(tmp))
        form = dict(starter.STARTERS["price-change"])
        saved = service.create_campaign(web, form)
        campaign_id = saved.campaign_id
        _translate(web, campaign_id)
        choices = service.preview_choices(web, campaign_id)
        messages = [(loc, send["send_key"], ch) for loc in choices["locales"] for send in choices["sends"]
                    for ch in choices["channels"]]

        previews = []
        for locale, key, channel in messages * 3:
            t = time.perf_counter()
            service.preview(web, campaign_id, locale=locale, send_key=key, channel=channel)
            previews.append(time.perf_counter() - t)

        words = service.get_words(web, campaign_id)
        assert words is not None
        stage = next(iter(words["stages"]))
        edits = []
        locale, key, channel = messages[0]
        for i in range(args.repeat):
            words["stages"][stage]["paragraphs"][0] = f"Edit {i}: the new price starts on {{date}}."
            t = time.perf_counter()
            service.put_words(web, campaign_id, words)
            service.preview(web, campaign_id, locale=locale, send_key=key, channel=channel)
            edits.append(time.perf_counter() - t)

        with web.sessions() as s:
            bundle = store.read_bundle(s, campaign_id)
        campaign = store.campaign_of(bundle)
        bare = []
        with store.unpacked(bundle) as u:
            renderer = Renderer(u.templates_dir, u.locales_dir)
            everything = list(samples(campaign))
            render_sample(renderer, campaign, everything[0])  # templates compiled once, as a sender's are
            for sample in everything * 3:
                t = time.perf_counter()
                renderer._variants.clear()  # a variant not rendered yet: the sender's cost per new variant
                render_sample(renderer, campaign, sample)
                bare.append(time.perf_counter() - t)

    p50, p90 = _ms(previews)
    e50, e90 = _ms(edits)
    b50, b90 = _ms(bare)
    print(f"preview of one message: median {p50:.1f} ms, p90 {p90:.1f} ms ({len(previews)} previews)")
    print(f"save a changed sentence, then preview: median {e50:.1f} ms, p90 {e90:.1f} ms ({len(edits)} edits)")
    print(f"baseline, the bare render on a warm renderer: median {b50:.1f} ms, p90 {b90:.1f} ms")
    print(f"studio_preview: preview_ms={p50:.1f} edit_preview_ms={e50:.1f} bare_render_ms={b50:.1f} "
          f"preview_ratio={p50 / b50:.1f} edit_ratio={e50 / b50:.1f}")


if __name__ == "__main__":
    main()
