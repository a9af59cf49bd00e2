"""``protodiff explore RUN``: a run's concepts in the browser, live.

The explorer is a view. :mod:`~protodiff.explore.session` is the library it shows (an
:class:`~protodiff.explore.session.Explorer` holds a run open: pictures encoded and inverted once,
edits through :class:`~protodiff.explain.edit.EditSettings`, the prototype gallery through
:func:`protodiff.explain`, saved effect matrices and shortcut rankings read back through their
schema), usable from Python without the web extra; :mod:`~protodiff.explore.uploads` decodes an
uploaded image in memory, checked; :mod:`~protodiff.explore.app` is the web layer (Starlette, the
``explore`` extra) serving one page (``page.html``, ``page.js``, ``page.css``).
"""
