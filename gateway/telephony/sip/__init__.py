"""SIP telephony: a user agent client over UDP (RFC 3261) behind the adapter interface.

Modules, bottom up: :mod:`.message` (parse/serialise), :mod:`.headers` (header values,
X- headers), :mod:`.digest` (RFC 2617/7616 digest), :mod:`.outcomes` (status → outcome),
:mod:`.transport` (the socket and routing), :mod:`.transaction` (client transactions and
timers), :mod:`.outgoing` (INVITE/CANCEL/SDP), :mod:`.dialog`, :mod:`.call` (one call),
:mod:`.adapter` (:class:`SipAdapter`).
"""

from gateway.telephony.sip.adapter import SipAdapter

__all__ = ["SipAdapter"]
