#!/bin/sh
# args: purge (1: also disable and remove the unit file and the logs). Stops the hive (unit or
# pid file); a pid that is not our rbee-hive is never signalled.
. lib/env.sh
. lib/systemd.sh
. lib/set_aside.sh
. lib/service.sh
rbee_stop "$1"
exit 0
