"""The terminal dashboard (`adrs dashboard RUN_DIR`): a Textual app over a run store.

`data` is the store-reading layer (no Textual); `app`, `screens` and `widgets` are the UI.
"""
