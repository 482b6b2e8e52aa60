"""The Binance spot venue adapter: everything the gateway's assembly asks a venue for.

A venue adapter builds the venue-specific parts of a gateway from its config, its credentials and
the shared parts (rate gate, clock, redactor): the order signer (the order path's second step),
the REST client, the instruments' trading rules (from the venue's own listing), the WebSocket API
client and user-data stream when configured, and the order wire (held-open connections for new
orders). `pipeline/gateway/assembly.py` picks the adapter by `[gateway] venue` (pipeline/venues/
__init__.py GATEWAY_ADAPTERS); a new
venue (OKX) adds a class with the same methods. Binance's order conversation is
pipeline/venues/binance/{execution,intents,reconcile,rest,ws_api}.py; the gateway's generic code
(pipeline/gateway/) names no venue.
"""
from __future__ import annotations

from typing import Any

import orjson

from pipeline.gateway.rest import Outcome
from pipeline.venues.base import VenueError
from pipeline.venues.binance.ratelimits import used_from_headers
from pipeline.venues.binance.rest import RestClient



class BinanceVenue:
    """Binance spot (REST /api/v3, WS-API, user-data stream); also the simulator (venue SIM)."""

    # the REST answers' X-MBX-USED-WEIGHT-* / X-MBX-ORDER-COUNT-* headers, for the rate gate
    rate_usage = staticmethod(used_from_headers)

    def __init__(self, cfg, risk_cfg):
        self.cfg = cfg                    # [gateway]
        self.risk_cfg = risk_cfg          # [risk]
        from pipeline.venues.binance.execution import BinanceExecution
        from pipeline.venues.binance.reconcile import reconcile
        self.execution = BinanceExecution  # the order conversation (venues/binance/execution.py)
        self.reconcile = reconcile        # the restart reconciliation with the venue

    def signer(self, secret: str, recv_window_ms: int):
        """The compiled order signer (REST bodies; FULL answers carry the fills)."""
        from pipeline.gateway.signing import BinanceSigner
        self._ed = None
        if self.cfg.key_type == "ed25519":   # the secret is the private key (keys.py)
            from pipeline.gateway import keys
            try:
                self._ed = keys.ed25519_signer(secret)
            except ValueError as exc:
                raise VenueError(f"credentials: {exc}") from None
        return BinanceSigner(secret, recv_window_ms=recv_window_ms, resp_type="FULL",
                             stp_mode=self.risk_cfg.self_trade_prevention_mode)

    def rest(self, api_key: str, sign, gate, *, recv_window_ms: int, timestamp_ms, redact
             ) -> RestClient:
        cfg = self.cfg
        if getattr(self, "_ed", None) is not None:
            from pipeline.gateway import keys
            sign = keys.rest_sign(self._ed)
        return RestClient(cfg.rest_url, api_key, lambda q: sign(q), gate,
                          connect_timeout_s=cfg.connect_timeout_s,
                          read_timeout_s=cfg.request_timeout_s, recv_window_ms=recv_window_ms,
                          timestamp_ms=timestamp_ms, redact=redact, ca_bundle=cfg.ca_bundle)

    def rules(self, rest: RestClient) -> dict[int, Any]:
        """{symbol id: InstrumentRules} of the configured symbols from exchangeInfo, with our
        limits from [risk] (VenueError when a symbol is not listed or not tradable)."""
        from pipeline.gateway import risk as riskmod
        from pipeline.records import Venue
        import os

        from pipeline.instruments import InstrumentError, gateway_source, registry_for
        cfg = self.cfg
        try:          # ids from the run's instrument cache (pipeline/instruments.py)
            registry = registry_for({gateway_source(cfg): {s.upper() for s in cfg.symbols}},
                                    os.environ.get("PIPELINE_RUN_DIR") or "run")
        except InstrumentError as exc:
            raise VenueError(str(exc)) from None
        venue = Venue[cfg.venue]          # BINANCE, or SIM (the simulator speaks Binance)
        r = rest.public("/api/v3/exchangeInfo", {"symbols": orjson.dumps(list(cfg.symbols)).decode()})
        if r.outcome is not Outcome.OK or not isinstance(r.data, dict):
            raise VenueError(f"exchangeInfo failed: {r.outcome.value} {r.status} {r.msg}")
        infos = {s["symbol"]: s for s in r.data.get("symbols", ()) if isinstance(s, dict)}
        out: dict[int, Any] = {}
        for sym in cfg.symbols:
            if sym not in infos:
                raise VenueError(f"symbol {sym} is not listed by the venue")
            sid = registry.id(venue, sym)
            try:
                out[sid] = riskmod.rules_for(self.risk_cfg, venue=venue, symbol_id=sid,
                                             exchange_symbol=infos[sym])
            except KeyError as exc:
                raise VenueError(f"{sym}: {exc.args[0]}") from None
            except ValueError as exc:
                raise VenueError(f"{sym}: cannot build its trading rules: {exc}") from None
        return out

    def streams(self, api_key: str, sign, gate, *, timestamp_ms, recv_window_ms: int, redact
                ) -> tuple[Any, Any]:
        """(WS-API order client or None, user-data stream or None), as configured."""
        cfg = self.cfg
        ws = stream = None
        if cfg.transport == "ws_api" or cfg.user_stream:
            from pipeline.venues.binance.ws_api import UserStream, WsApiClient, WsOrderWire, WsSigner
            ed = getattr(self, "_ed", None)
            session = ed is not None          # Ed25519: session.logon on every connection
            if session:
                from pipeline.gateway import keys
                sign = keys.ws_sign(ed)
            wss = WsSigner(api_key, sign, timestamp_ms, recv_window_ms)
            if cfg.transport == "ws_api" and session:   # the logged-on request/answer client
                ws = WsApiClient(cfg.ws_api_url, wss, gate, connect_timeout_s=cfg.connect_timeout_s,
                                 read_timeout_s=cfg.request_timeout_s, redact=redact,
                                 session=True)
            elif cfg.transport == "ws_api":   # async_orders: pipelined, answers matched by id
                ws = (WsOrderWire if cfg.async_orders else WsApiClient)(
                    cfg.ws_api_url, wss, gate, connect_timeout_s=cfg.connect_timeout_s,
                    read_timeout_s=cfg.request_timeout_s, redact=redact,
                    ca_bundle=cfg.ca_bundle)
            if cfg.user_stream:
                stream = UserStream(cfg.ws_api_url, wss, connect_timeout_s=cfg.connect_timeout_s,
                                    redact=redact, ca_bundle=cfg.ca_bundle,
                                    session=session)
        return ws, stream

    def wire(self, api_key: str, gate, *, redact, cores):
        """The order wire (REST with async_orders): new orders on held-open connections."""
        cfg = self.cfg
        if cfg.transport != "rest" or not cfg.async_orders:
            return None
        from pipeline.venues.binance.rest import BinanceWire
        return BinanceWire(cfg.rest_url, api_key, gate, connect_timeout_s=cfg.connect_timeout_s,
                    read_timeout_s=cfg.request_timeout_s, redact=redact,
                    connections=cfg.order_connections, cores=cores, ca_bundle=cfg.ca_bundle)


__all__ = ["BinanceVenue", "VenueError"]
