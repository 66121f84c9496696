package gateway

// FollowersWaiting returns how many requests wait for another's upstream
// call, for tests that must know a herd has gathered before the call ends.
func FollowersWaiting(g *Gateway) int { return g.flights.followers() }

// RefreshesRunning returns how many background refreshes are under way
// (each holds a slot until it has stored what it fetched).
func RefreshesRunning(g *Gateway) int { return len(g.bgSlots) }
