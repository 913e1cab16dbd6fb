"""What the controller needs of SDP (RFC 4566, RFC 3264): whether a message carries a
session description, and an answer that declines every stream of an offer.

The gateway carries offers and answers between the legs as they are: it rewrites none of
their media lines, so media flows between the trunk and the agent directly. A declining
answer is what it owes a leg whose offer it cannot put through (the agent leg failed): the
ACK of a 2xx with an offer must carry the answer (RFC 3261 §13.2.2.4), and one with every
``m=`` line at port 0 accepts no media (RFC 3264 §6) before the BYE that follows.
"""

from __future__ import annotations

from gateway.telephony.sip.message import SipMessage

SDP = "application/sdp"


def session_of(message: SipMessage) -> bytes | None:
    """The message's SDP body, or None if it carries none."""
    kind = (message.get("content-type") or "").split(";", 1)[0].strip().lower()
    if kind != SDP or not message.body.strip():
        return None
    return message.body


def declining_answer(offer: bytes, address: str, session: int) -> bytes:
    """An answer to ``offer`` that declines each of its media streams: the same ``m=``
    lines in the same order (RFC 3264 §6 needs one per offered stream), port 0, their
    first format only."""
    return _answer(offer, address, session, port=0, inactive=False)


def hold_answer(offer: bytes, address: str, session: int) -> bytes:
    """An answer to ``offer`` that accepts each stream on hold (RFC 3264 §8.4:
    ``a=inactive``, the discard port 9): what the agent's leg is given while the contact
    rings, with ``trunk_offer = "early"``."""
    return _answer(offer, address, session, port=9, inactive=True)


def _answer(offer: bytes, address: str, session: int, *, port: int, inactive: bool) -> bytes:
    lines = ["v=0", f"o=- {session} {session} IN IP4 {address}", "s=-",
             f"c=IN IP4 {address}", "t=0 0"]
    for raw in offer.decode("utf-8", "replace").splitlines():
        if raw.startswith("m="):
            fields = raw[2:].split()
            if len(fields) >= 4:  # media port proto fmt...
                lines.append(f"m={fields[0]} {port} {fields[2]} {fields[3]}")
                if inactive:
                    lines.append("a=inactive")
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


def with_origin(session: bytes, origin: bytes) -> bytes:
    """``session`` with the ``o=`` line of ``origin`` (its version one higher): what an
    SDP sent again on a dialog must keep (RFC 3264 §8), the media lines untouched."""
    lines = session.decode("utf-8", "replace").splitlines()
    mine = next((line for line in origin.decode("ascii", "replace").splitlines()
                 if line.startswith("o=")), None)
    if mine is None:
        return session
    fields = mine[2:].split()
    if len(fields) == 6 and fields[2].isdigit():
        fields[2] = str(int(fields[2]) + 1)
    new = "o=" + " ".join(fields)
    out = [new if line.startswith("o=") else line for line in lines]
    return ("\r\n".join(out) + "\r\n").encode("utf-8")
