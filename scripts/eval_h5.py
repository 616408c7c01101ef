"""eval_h5 — reading eval.h5's attributes, shared by sweep_table.py and report_table.py."""


def attr_list(f, key):
    """The comma-separated string attribute key of the open h5py file f, as a list."""
    value = f.attrs[key]
    return (value.decode() if isinstance(value, bytes) else str(value)).split(",")
