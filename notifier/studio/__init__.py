"""The studio: marketing writes, translates, tries and sends a campaign in the browser (and through the JSON API).

- ``store``: campaign versions in the ledger (files, byte for byte), this machine's copy, export and import;
- ``starter``, ``words``, ``translations``: a campaign from a form, its words in the source language, translations
  side by side with PO and XLIFF 2 for translators, and the gate;
- ``uploads``, ``dryrun``, ``testsend``: an audience from the browser, what a campaign would do, a test to oneself;
- ``service``: each operation once, for the dashboard's pages and the API.
"""
