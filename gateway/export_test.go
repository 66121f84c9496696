package gateway

// FollowersWaiting returns how many requests wait for another's upstream
// call, for tests that must know a herd has gathered before the call ends.
func FollowersWaiting(g *Gateway) int { return g.flights.followers() }
