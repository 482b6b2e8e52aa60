"""The feed process: WebSocket connections, the frame decoder, book sync, recording and replay."""
