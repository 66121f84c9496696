// Package cache is cachegate's domain: the stored Entry, the Backend
// contract every storage implementation fulfils, the Filter and Query used to
// browse entries, and the Policy that decides what is cached and for how long.
//
// It depends on the standard library only; every other package points inward
// to it. Concrete backends live under backends/, the HTTP side under gateway/.
package cache
