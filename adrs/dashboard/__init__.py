"""The terminal dashboard (`adrs dashboard RUN_DIR`): a Textual app over a run store.

`data` is the store-reading layer (no Textual); `app` composes the views and holds the key
bindings and the poll, `views` has one class per view of the main screen, `screens` the
pushed program and help screens, and `widgets` the score chart and the heat map.
"""
