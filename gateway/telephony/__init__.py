"""Telephony adapters behind one small interface (see :mod:`gateway.telephony.base`)."""
