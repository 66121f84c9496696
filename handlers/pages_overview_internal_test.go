package handlers

import (
	"strings"
	"testing"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// Each reason the policy writes maps, through the overview's rule name,
// to a prefix that the reason itself starts with: the rule's link lists
// the entries it stored.
func TestRuleReasonPrefixSelectsTheRulesEntries(t *testing.T) {
	for _, c := range []struct {
		mode   cache.Mode
		reason string
	}{
		{cache.ModeRequestsCache, "expire_after gives 1h0m0s"},
		{cache.ModeRequestsCache, `urls_expire_after pattern "/repos/*" gives 10m0s`},
		{cache.ModeRequestsCache, "the upstream's Cache-Control: max-age=60 gives 1m0s"},
		{cache.ModeRequestsCache, "the upstream's Cache-Control: immutable says never expire"},
		{cache.ModeRequestsCache, "the upstream's Expires header gives Thu, 03 Dec 2026 12:00:00 GMT"},
		{cache.ModeRequestsCache, "the request's " + cache.ExpireAfterHeader + " header gives 30s"},
		{cache.ModeRFC9111, "Cache-Control: max-age gives a freshness lifetime of 1m0s"},
	} {
		rule := gateway.RuleOf(c.reason)
		prefix := ruleReasonPrefix(c.mode, rule)
		if prefix == "" || !strings.HasPrefix(c.reason, prefix) {
			t.Errorf("%s %q: rule %q, prefix %q does not select it", c.mode, c.reason, rule, prefix)
		}
	}
}
