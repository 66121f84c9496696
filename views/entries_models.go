package views

import (
	"net/url"
	"strings"
	"time"
)

// EntriesView is the Entries page: one page of a backend's entries,
// filtered and sorted, with the totals of the whole match and the bulk
// bar. Every state is in State, so each link rebuilds the same view.
type EntriesView struct {
	// Now is the time expiries and ages are judged at.
	Now time.Time
	// State is the filter, sort and order as given in the URL (blank
	// values left out, no cursor, no backend): links add to it.
	State url.Values
	// Sort is the sort field in force ("created" by default) and Desc its
	// direction.
	Sort string
	Desc bool
	// Upstreams are the configured upstream names for the filter's select.
	Upstreams []string
	// Rows is the page, in order.
	Rows []EntryRow
	// Total and TotalBytes count the whole match, every page.
	Total, TotalBytes int64
	// BackendEmpty is true when the backend holds no entry at all (as
	// opposed to none matching the filter).
	BackendEmpty bool
	// Next and Prev are the cursors of the following and previous pages;
	// empty when there is none. Paged is true on any page but the first.
	Next, Prev string
	Paged      bool
	// FilterError says what is wrong with a filter value; the table is
	// not shown with it.
	FilterError string
	// Notice reports a finished action ("Deleted 3 entries (1.2 KiB)");
	// Job is a job an action started.
	Notice string
	Job    *JobNotice
	// OtherBackends are the backends entries can be copied to.
	OtherBackends []string
}

// EntryRow is one entry in the table.
type EntryRow struct {
	Key, Method string
	// URL is the stored URL, redacted as stored.
	URL, Upstream, ContentType string
	Status                     int
	Size, Hits                 int64
	// Expires is zero for never; LastHit zero for never hit.
	Created, Expires, LastHit time.Time
	Expired                   bool
}

// JobNotice is a job an action on the page started, for live.js to follow.
type JobNotice struct {
	ID, Kind string
	// State, Done, Total and Failed are the job's when the page was drawn.
	State               string
	Done, Total, Failed int64
	// URL is the job's page.
	URL string
}

// EntriesConfirmView asks before a bulk delete: how many entries and
// bytes, with the selection repeated in hidden fields.
type EntriesConfirmView struct {
	Count, Bytes int64
	// Action is where the confirmed form posts; Hidden its fields (the
	// selection, the view to return to), in order.
	Action string
	Hidden [][2]string
	// Cancel is the list to go back to.
	Cancel string
	// What says what is selected ("the 3 ticked entries", "all entries
	// matching upstream=bin").
	What string
}

// FilterFields are the names of the filter form's fields, as the JSON
// API's listing calls them, in the order the form shows them.
var FilterFields = []string{
	"upstream", "url", "status", "content_type", "freshness",
	"min_size", "max_size", "created_after", "created_before",
	"expires_after", "expires_before", "method", "base_key",
	"reason", "credentials", "set_cookie", "vary",
}

// linkedFilters are the filter fields the form has no input for, set by
// links from the Overview and Upstreams pages; the form keeps them in
// hidden fields and says what they select.
var linkedFilters = []string{"method", "base_key", "reason", "credentials", "set_cookie", "vary"}

// LinkedFilter is one linkedFilters field in force.
type LinkedFilter struct {
	Name, Value, Label string
}

// LinkedFilters returns the linkedFilters fields set, each with words.
func (v EntriesView) LinkedFilters() []LinkedFilter {
	var out []LinkedFilter
	for _, k := range linkedFilters {
		val := v.State.Get(k)
		if val == "" {
			continue
		}
		label := k + " " + val
		switch k {
		case "method":
			label = "method " + val
		case "base_key":
			label = "variants of one resource"
		case "reason":
			label = "expiry set by " + strings.TrimSpace(val)
		case "credentials":
			label = "stored from requests with credentials"
			if val == "false" {
				label = "stored from requests without credentials"
			}
		case "set_cookie":
			label = "responses stored with Set-Cookie"
			if val == "false" {
				label = "responses stored without Set-Cookie"
			}
		case "vary":
			label = "Vary on " + val
		}
		out = append(out, LinkedFilter{Name: k, Value: val, Label: label})
	}
	return out
}

// Filtered reports whether any filter field is set.
func (v EntriesView) Filtered() bool {
	for _, k := range FilterFields {
		if v.State.Get(k) != "" {
			return true
		}
	}
	return false
}

// moreFiltersSet reports whether a field under "More filters" is set, so
// that the form shows it open.
func (v EntriesView) moreFiltersSet() bool {
	for _, k := range []string{"status", "content_type", "min_size", "max_size", "created_after", "created_before", "expires_after", "expires_before"} {
		if v.State.Get(k) != "" {
			return true
		}
	}
	return false
}

// FilterValue is the value of a filter field as typed.
func (v EntriesView) FilterValue(name string) string { return v.State.Get(name) }

// with returns State with key set to value (deleted when value is "").
func (v EntriesView) with(pairs ...string) url.Values {
	out := url.Values{}
	for k, vs := range v.State {
		out[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			out.Del(pairs[i])
		} else {
			out.Set(pairs[i], pairs[i+1])
		}
	}
	return out
}

// defaultDesc is the direction a column sorts in when first clicked, the
// same default the API has: URLs A to Z, everything else largest first.
func defaultDesc(field string) bool { return field != "url" }

// SortURL is the link of a column header: sort by field, in its default
// direction, or the other way when it already sorts by field. The filter
// rides along; the cursor does not (a new order starts at its first page).
func (v EntriesView) SortURL(l Layout, field string) string {
	desc := defaultDesc(field)
	if v.Sort == field {
		desc = !v.Desc
	}
	order := "asc"
	if desc {
		order = "desc"
	}
	return l.LinkWith("/entries", v.with("sort", field, "order", order))
}

// AriaSort is the aria-sort of a column header: "ascending" or
// "descending" for the column in force, "" for the others.
func (v EntriesView) AriaSort(field string) string {
	if v.Sort != field {
		return ""
	}
	if v.Desc {
		return "descending"
	}
	return "ascending"
}

// NextURL and PrevURL are the pager's links; FirstURL the first page's.
func (v EntriesView) NextURL(l Layout) string {
	return l.LinkWith("/entries", v.with("next", v.Next))
}

// PrevURL is the previous page's link.
func (v EntriesView) PrevURL(l Layout) string {
	return l.LinkWith("/entries", v.with("prev", v.Prev))
}

// FirstURL is the first page of the same view.
func (v EntriesView) FirstURL(l Layout) string { return l.LinkWith("/entries", v.State) }

// ClearURL is the list without a filter, in the same order.
func (v EntriesView) ClearURL(l Layout) string {
	q := url.Values{}
	for _, k := range []string{"sort", "order"} {
		if s := v.State.Get(k); s != "" {
			q.Set(k, s)
		}
	}
	return l.LinkWith("/entries", q)
}

// shortURL is a stored URL without its scheme and host, which the
// upstream column already says: the part that tells entries apart comes
// first, before the ellipsis. The cell's title has the whole URL.
func shortURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	if rest := strings.TrimPrefix(s, u.Scheme+"://"+u.Host); rest != s && rest != "" {
		return rest
	}
	return s
}

// EntryURL is an entry's detail page, on the same backend.
func (v EntriesView) EntryURL(l Layout, key string) string {
	return l.LinkWith("/entries/"+url.PathEscape(key), nil)
}
