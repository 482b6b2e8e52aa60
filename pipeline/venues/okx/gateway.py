"""The OKX v5 spot venue adapter: the same methods as venue_binance.BinanceVenue, plus the parts
that differ by venue (the order path, the execution class, reconciliation, the passphrase).

    [gateway]
    venue = "OKX"
    symbols = ["BTC-USDT"]                 # instIds (GET /api/v5/public/instruments)
    rest_url = "https://www.okx.com"
    ws_api_url = "wss://ws.okx.com:8443/ws/v5/private"   # the private WebSocket (orders channel)
    transport = "rest"                     # or "ws_api": new orders over the private WebSocket
    okx_demo = false                       # true: x-simulated-trading: 1 (OKX demo trading; its
                                           # WebSocket is wss://wspap.okx.com:8443/ws/v5/private)
    api_passphrase_env = "PIPELINE_API_PASSPHRASE"   # or api_passphrase= in credentials_file

The hot path is ext/okx_sign.pyx's OkxOrderPath (risk check, then the order's JSON and its
OK-ACCESS-SIGN in one compiled call); fills come from the `orders` channel (user_stream = true)
or from queries; OKX's per-endpoint limits are kept by okx_rest.Budget.
"""
from __future__ import annotations

import os
from typing import Any

from pipeline import _native
from pipeline.venues.base import VenueError

_okx_sign = _native.load("okx_sign")


class OkxVenue:
    """OKX v5 spot (REST /api/v5, private WebSocket /ws/v5/private)."""

    extra_credential_envs = ("api_passphrase_env",)   # [gateway] keys naming more secrets

    def __init__(self, cfg, risk_cfg):
        self.cfg = cfg
        self.risk_cfg = risk_cfg
        self._phrase = None
        self._sign = None
        from pipeline.venues.okx.execution import OkxExecution
        from pipeline.venues.okx.reconcile import reconcile
        self.execution = OkxExecution
        self.reconcile = reconcile

    def credentials(self, environ, redact) -> None:
        """The API key's passphrase: api_passphrase= in the credentials file, else the environment
        variable [gateway] api_passphrase_env (then removed from the environment)."""
        from pipeline.gateway.secrets import CredentialError, load_passphrase
        try:
            self._phrase = load_passphrase(env=self.cfg.api_passphrase_env,
                                           file=self.cfg.credentials_file, environ=environ)
        except CredentialError as exc:
            raise VenueError(str(exc)) from None
        if environ is None and not self.cfg.credentials_file:
            os.environ.pop(self.cfg.api_passphrase_env, None)
        redact.add(self._phrase)

    def signer(self, secret: str, recv_window_ms: int):
        s = _okx_sign.OkxOrderSigner(secret)
        self._sign = s.sign
        return s

    def order_path(self, risk, signer):
        return _okx_sign.OkxOrderPath(risk, signer)

    def rest(self, api_key: str, sign, gate, *, recv_window_ms: int, timestamp_ms, redact):
        from pipeline.venues.okx.rest import OkxRest
        cfg = self.cfg
        if self._phrase is None:
            raise VenueError("OKX: no passphrase loaded")
        return OkxRest(cfg.rest_url, api_key, self._phrase.reveal(), self._sign, gate,
                       connect_timeout_s=cfg.connect_timeout_s,
                       read_timeout_s=cfg.request_timeout_s, recv_window_ms=recv_window_ms,
                       timestamp_ms=timestamp_ms, redact=redact, ca_bundle=cfg.ca_bundle,
                       demo=cfg.okx_demo, rate_limits=cfg.okx_rate_limits)

    def rules(self, rest) -> dict[int, Any]:
        """{symbol id: InstrumentRules} of the configured instIds from the venue's listing."""
        from pipeline.gateway import risk as riskmod  # noqa: F401 - [risk] limits helpers
        from pipeline.gateway.instruments import InstrumentRules
        from pipeline.gateway.rest import Outcome
        from pipeline.instruments import InstrumentError, gateway_source, registry_for
        from pipeline.records import Venue
        from pipeline.venues.okx.instruments import fields_of
        cfg = self.cfg
        try:
            registry = registry_for({gateway_source(cfg): {s.upper() for s in cfg.symbols}},
                                    os.environ.get("PIPELINE_RUN_DIR") or "run")
        except InstrumentError as exc:
            raise VenueError(str(exc)) from None
        r = rest.public("/api/v5/public/instruments", {"instType": "SPOT"})
        if r.outcome is not Outcome.OK or not isinstance(r.data, list):
            raise VenueError(f"public/instruments failed: {r.outcome.value} {r.status} {r.msg}")
        listed = {str(d.get("instId", "")).upper(): d for d in r.data if isinstance(d, dict)}
        out: dict[int, Any] = {}
        for sym in cfg.symbols:
            d = listed.get(sym.upper())
            if d is None:
                raise VenueError(f"instrument {sym} is not listed by the venue")
            if d.get("state") != "live":
                raise VenueError(f"instrument {sym} is not live (state {d.get('state')!r})")
            f = fields_of(d)
            sid = registry.id(Venue.OKX, sym.upper())
            try:
                lim = self.risk_cfg.limits_for("OKX", sym.upper())
                out[sid] = InstrumentRules.build(
                    symbol_id=sid, venue=int(Venue.OKX), name=sym.upper(), tick=f["tick"],
                    step=f["step"], min_qty=f["min_qty"] or 0, max_qty=f["max_qty"] or 0,
                    max_order_qty=lim.max_order_qty, max_position_qty=lim.max_position_qty,
                    max_order_notional=float(self.risk_cfg.order_notional_for("OKX",
                                                                              sym.upper())))
            except KeyError as exc:
                raise VenueError(f"{sym}: {exc.args[0]}") from None
            except ValueError as exc:
                raise VenueError(f"{sym}: cannot build its trading rules: {exc}") from None
        return out

    def streams(self, api_key: str, sign, gate, *, timestamp_ms, recv_window_ms: int, redact):
        """(order wire or None, orders-channel stream or None): one private WebSocket serves
        both when transport = "ws_api"."""
        cfg = self.cfg
        if not (cfg.user_stream or cfg.transport == "ws_api"):
            return None, None
        from pipeline.venues.okx.stream import OkxPrivate
        p = OkxPrivate(cfg.ws_api_url, api_key, self._phrase.reveal(), self._sign, timestamp_ms,
                       connect_timeout_s=cfg.connect_timeout_s,
                       read_timeout_s=cfg.request_timeout_s, redact=redact,
                       ca_bundle=cfg.ca_bundle, orders=cfg.transport == "ws_api")
        return (p if cfg.transport == "ws_api" else None), p

    def wire(self, api_key: str, gate, *, redact, cores):
        return None          # REST orders are written by the loop (ext/wirefmt is Binance's)


__all__ = ["OkxVenue"]
