package crawler

import (
	"bytes"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// Extract is what a page says about itself and where it links.
type Extract struct {
	Title       string
	Description string
	Canonical   string // normalised, "" when absent or not http(s)
	Lang        string
	Links       []string // normalised, absolute, each once, in page order
	Text        string   // the visible words, for fingerprints
}

// maxLinks caps the links taken from one page (a page of a million links
// is a trap of its own).
const maxLinks = 2000

// ExtractHTML reads a page with x/net/html's tokenizer: no tree is built,
// so a huge page costs its bytes, not a DOM. base is the page's URL.
func ExtractHTML(base *url.URL, body []byte) Extract {
	var ex Extract
	z := html.NewTokenizer(bytes.NewReader(body))
	seen := map[string]bool{}
	var text strings.Builder
	inTitle, skip := false, 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken: // io.EOF, or a page too broken to read on: what was read stands
			ex.Title = strings.TrimSpace(ex.Title)
			ex.Text = text.String()
			return ex
		case html.TextToken:
			t := string(z.Text())
			if inTitle {
				ex.Title += t
			} else if skip == 0 {
				text.WriteString(t)
				text.WriteByte(' ')
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if tt == html.EndTagToken {
				switch tag {
				case "title":
					inTitle = false
				case "script", "style":
					skip = max(0, skip-1)
				}
				continue
			}
			attrs := map[string]string{}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				attrs[string(k)] = string(v)
			}
			switch tag {
			case "title":
				inTitle = tt == html.StartTagToken
			case "script", "style":
				if tt == html.StartTagToken {
					skip++
				}
			case "html":
				ex.Lang = attrs["lang"]
			case "meta":
				if strings.EqualFold(attrs["name"], "description") {
					ex.Description = attrs["content"]
				}
			case "link":
				if strings.EqualFold(attrs["rel"], "canonical") {
					ex.Canonical, _ = Resolve(base, attrs["href"])
				}
			case "base":
				if u, err := base.Parse(attrs["href"]); err == nil && attrs["href"] != "" {
					base = u
				}
			case "a", "area":
				if strings.Contains(strings.ToLower(attrs["rel"]), "nofollow") || len(ex.Links) >= maxLinks {
					continue
				}
				if u, err := Resolve(base, attrs["href"]); err == nil && !seen[u] {
					seen[u] = true
					ex.Links = append(ex.Links, u)
				}
			}
		}
	}
}
