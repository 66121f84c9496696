package cache_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// A filter selects everything only when no field but Now is set: each
// field, set alone, narrows it (checked for every field there is, so one
// added later is covered too).
func TestFilterSelectsAll(t *testing.T) {
	if !(cache.Filter{Now: time.Now(), Keys: []string{}}).SelectsAll() {
		t.Fatal("a filter with only Now and an empty key list does not select everything")
	}
	typ := reflect.TypeOf(cache.Filter{})
	for i := range typ.NumField() {
		field := typ.Field(i)
		if field.Name == "Now" {
			continue
		}
		var f cache.Filter
		v := reflect.ValueOf(&f).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int64:
			v.SetInt(1)
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"k"}))
		case reflect.Struct: // time.Time
			v.Set(reflect.ValueOf(time.Unix(1, 0)))
		default:
			t.Fatalf("field %s of kind %s: teach this test to set it", field.Name, v.Kind())
		}
		if f.SelectsAll() {
			t.Errorf("a filter with only %s set selects everything", field.Name)
		}
	}
}
