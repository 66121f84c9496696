package mongo

import "testing"

// TestBoundRequestBody checks that a request body is kept inline only
// while it fits beside the inline response body under the document limit.
func TestBoundRequestBody(t *testing.T) {
	tests := []struct {
		name      string
		req, body int
		wantKept  bool
	}{
		{"small", 100, 100, true},
		{"exactly the bound", maxInline - 10, 10, true},
		{"over with the body", maxInline - 10, 11, false},
		{"over alone", maxInline + 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &document{RequestBody: make([]byte, tt.req), Body: make([]byte, tt.body)}
			d.boundRequestBody()
			if got := d.RequestBody != nil; got != tt.wantKept {
				t.Fatalf("request body kept = %v, want %v", got, tt.wantKept)
			}
		})
	}
}
