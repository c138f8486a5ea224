"""The studies that ship with tinyab: ``search_spaces/*.yaml`` (searches) and ``ablations/*.yaml``.

Package data, so a plain ``pip install`` finds them by name; a user's own ``search_spaces/`` and
``ablations/`` folders in the working directory come first (tinyab.study.catalog).
"""
