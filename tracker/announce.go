package main

import "github.com/shoal-p2p/shoal/lib/p2p"

// parseAnnounce decodes the announce body agents send (lib/trackerclient: one flat
// JSON object of plain strings, an integer and a boolean) without reflection. It
// accepts only what it decodes exactly as encoding/json would: on anything else (an
// escape, a non-ASCII byte, an unknown or differently cased key, null, a fraction, a
// big number, trailing data) it returns false and the caller uses json.Unmarshal.
func parseAnnounce(b []byte) (a p2p.Announce, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return a, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return a, skipSpace(b, i+1) == len(b)
	}
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return a, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return a, false
		}
		i = skipSpace(b, i+1)
		var field *string
		switch key {
		case "info_hash":
			field = &a.InfoHash
		case "digest":
			field = &a.Digest
		case "peer_id":
			field = &a.PeerID
		case "ip":
			field = &a.IP
		case "port":
			n, j, ok := smallInt(b, i)
			if !ok {
				return a, false
			}
			a.Port, i = n, j
		case "complete":
			switch {
			case hasPrefix(b[i:], "true"):
				a.Complete, i = true, i+4
			case hasPrefix(b[i:], "false"):
				a.Complete, i = false, i+5
			default:
				return a, false
			}
		default:
			return a, false
		}
		if field != nil {
			s, j, ok := plainString(b, i)
			if !ok {
				return a, false
			}
			*field, i = s, j
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return a, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return a, skipSpace(b, i+1) == len(b)
		default:
			return a, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at b[i] made only of printable ASCII without
// escapes; it returns the string and the index after its closing quote.
func plainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return "", 0, false
		}
	}
	return "", 0, false
}

// smallInt reads an integer of at most 9 digits (so no overflow) with an optional
// minus sign, as JSON writes it (no leading zeros, no fraction or exponent).
func smallInt(b []byte, i int) (int, int, bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	start, n := i, 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 10 {
		n = n*10 + int(b[i]-'0')
		i++
	}
	switch {
	case i == start || i-start > 9:
		return 0, 0, false
	case b[start] == '0' && i-start > 1:
		return 0, 0, false
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, i, true
}

func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}
