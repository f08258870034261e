"""Dataset layouts, one module each: `imagefolder`, `csv_manifest` and the layouts public
facial-expression sets ship in (`fer2013`, `rafdb`, `affectnet`, `daisee`).

emoprobe never downloads a dataset: each module reads the user's own copy, in the layout
its authors distribute it in, into the same items an ImageFolder gives. Each module has
one `FORMAT` (`common.Format`: name, what it expects, `looks_like`, `load`); `common` and
`listing` hold what they share; the registry and detection are `emoprobe.data.dataset`.

The public sets' modules give every image its dataset's class *name* (FER2013 ``Happy``,
RAF-DB ``Happiness``), which goes through `Task.canonical_label` (so a task's ``label_map``
turns it into one of the task's labels); when the name is unknown to the task the raw code
(``"3"``) is tried too. Labels the task lists in ``ignore_labels`` are left out with a
warning; any other unknown label is one `DatasetError` naming them and the allowed labels.
"""
