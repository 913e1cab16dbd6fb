"""Telephony adapters behind one small interface (see :mod:`gateway.telephony.base`),
opened with ``async with open_adapter(settings.telephony)`` (:mod:`gateway.telephony.open`)."""
