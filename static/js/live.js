// Live updates over /ws (job progress, stats): filled in by the websocket work.
