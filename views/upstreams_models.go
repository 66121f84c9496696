package views

// UpstreamsView is the Upstreams page: every configured upstream with the
// rules in force, in the order the gateway lists them.
type UpstreamsView struct {
	Upstreams []UpstreamView
	// Config says when the rules shown were loaded ("5 min ago") and how
	// many reloads put them in force; ReloadError is why the last reload
	// failed, empty when it did not.
	LoadedAgo   string
	Reloads     int64
	ReloadError string
}

// UpstreamView is one upstream on the Upstreams page.
type UpstreamView struct {
	Name, URL, Backend string
	// Mode is "requests-cache" or "rfc9111".
	Mode string
	// Entries and Bytes count what the upstream has stored in its backend;
	// EntriesLink lists them. CountErr says why they could not be counted
	// (the rule counts are then left out too).
	Entries, Bytes int64
	EntriesLink    string
	CountErr       string
	// Rules is the expiry chain, in the order the rules are tried.
	Rules []RuleRow
	// Other counts the entries no rule in force produced (stored under an
	// earlier configuration, or imported).
	Other      int64
	OtherBytes int64
	// Settings are the rest of the policy, name and value, in a fixed
	// order.
	Settings []Setting
}

// RuleRow is one expiry rule with the entries it stored.
type RuleRow struct {
	// Rule names the setting or header; Pattern is a urls_expire_after
	// pattern and Expire the configured expiry ("" when the response's
	// headers give it). Note says when it applies.
	Rule, Pattern, Expire, Note string
	Entries, Bytes              int64
	// Link lists the entries it stored; "" when the Entries page cannot
	// filter by it.
	Link string
}

// Setting is one named policy setting with its value as the config file
// spells it. Note explains it, for settings whose name says little.
type Setting struct {
	Name, Value, Note string
	// Off marks a setting at its default or disabled, shown muted.
	Off bool
}

// configNote says when the rules shown were loaded, and how to load them
// again.
func configNote(v UpstreamsView) string {
	if v.Reloads == 0 {
		return "Rules loaded " + v.LoadedAgo + ", at start. SIGHUP or POST /api/reload reads the configuration again."
	}
	return "Rules loaded " + v.LoadedAgo + " by a reload (" + Count(v.Reloads) + " since start: SIGHUP or POST /api/reload)."
}
