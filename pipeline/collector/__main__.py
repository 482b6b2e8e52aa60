import sys

from pipeline.collector.process import main

sys.exit(main())
