from pipeline.collector.process import main
from pipeline.telemetry.role import exit_role

exit_role(main)     # a late SIGTERM (the launcher's stop) cannot kill finalisation
