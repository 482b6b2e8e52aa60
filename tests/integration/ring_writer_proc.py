"""A ring writer process for integration tests: attach ring ARGV[1], wait for a line on stdin,
publish the TICK_DTYPE records of ARGV[2] (.npy) in chunks of ARGV[3], close the writer, exit."""
import sys

import numpy as np

from pipeline.bus.ring import TickRing


def main() -> int:
    name, path = sys.argv[1], sys.argv[2]
    chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    recs = np.load(path)
    ring = TickRing.attach(name, timeout=5.0)
    w = ring.writer()
    sys.stdout.write("attached\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return 1
    for lo in range(0, len(recs), chunk):
        w.publish_array(recs[lo:lo + chunk])
    w.close()
    ring.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
