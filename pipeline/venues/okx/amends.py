"""Which of our orders owns which OKX clOrdId after an amend.

A strategy's REPLACE on OKX is one amend-order when OKX allows it (pipeline/venues/okx/intents.py):
the venue's order keeps its clOrdId and ordId, so the new order of the book of record (its own
client id "pl<s>.<e>.<n>", judged by the risk kernel) takes over the old order's clOrdId. From then
on every request about the new order names that clOrdId (cancel, amend, query), and every report
naming it (orders push, query, fills) is the new order's.

OKX's accFillSz counts the venue order's whole life; the part filled before the amend belongs to
the orders it replaced (`base`): the new order's own filled size is accFillSz - base, and the
amend's newSz is base + the new order's size (OKX: newSz includes the filled part). A fill the
gateway had not yet heard of when it amended is the new order's (its remainder at the venue is
then newSz - accFillSz, the new order's own size less that fill: the same book).

The links are journalled (the "amend" record with replaces= and outcome OK) and rebuilt from the
journal on restart (`replay`); a link is dropped once its order is final.
"""
from __future__ import annotations

from pipeline.venues.okx import orders as ox


class AmendLinks:
    def __init__(self) -> None:
        self.wire: dict[str, tuple[str, float]] = {}   # our cid -> (venue clOrdId, base filled)
        self.owner: dict[str, str] = {}                # venue clOrdId -> our cid owning it

    def __len__(self) -> int:
        return len(self.wire)

    def cl_ord_id(self, cid: str) -> str:
        """The clOrdId the venue knows our order `cid` by."""
        got = self.wire.get(cid)
        return got[0] if got is not None else ox.wire_cid(cid)

    def base(self, cid: str) -> float:
        """The venue order's filled size that belongs to the orders `cid` replaced."""
        got = self.wire.get(cid)
        return got[1] if got is not None else 0.0

    def cid_of(self, cl_ord_id: str) -> str:
        """Our client id owning the venue's clOrdId now ("" when it is not one of ours)."""
        return self.owner.get(cl_ord_id) or ox.our_cid(cl_ord_id)

    def link(self, new_cid: str, old_cid: str, base: float, wire: str = "") -> str:
        """`new_cid` took over `old_cid`'s venue order (clOrdId `wire`, default the one `old_cid`
        is known by) by an amend; returns the clOrdId."""
        wire = wire or self.cl_ord_id(old_cid)
        self.wire.pop(old_cid, None)
        self.wire[new_cid] = (wire, base)
        self.owner[wire] = new_cid
        return wire

    def drop(self, cid: str) -> None:
        """`cid` is final: forget its link."""
        got = self.wire.pop(cid, None)
        if got is not None and self.owner.get(got[0]) == cid:
            del self.owner[got[0]]

    def replay(self, rec: dict) -> None:
        """A journal "amend" record of a replace that the venue accepted."""
        if rec.get("replaces") and rec.get("outcome") == "OK":
            self.link(str(rec["cid"]), str(rec["replaces"]), float(rec.get("base", 0.0)),
                      str(rec.get("clOrdId") or ""))


__all__ = ["AmendLinks"]
