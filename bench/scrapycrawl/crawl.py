"""Crawl the synthetic web (`scalelab crawler testweb`) with Scrapy.

bench/crawler.sh's Scrapy anchor, set up as Scrapy's "Broad Crawls" page
advises: robots.txt obeyed, one request at a time per domain with the given
DOWNLOAD_DELAY, the downloader-aware priority queue (per-domain queues,
scrapy PR #3520), cookies and retries off, log at INFO. Names resolve
through the web's DNS server (a Twisted resolver), as they do for
scalelab's crawler. Run with Debian's python3 (python3-scrapy):

    /usr/bin/python3 bench/scrapycrawl/crawl.py --hosts 1000 --port 8380 \
        --dns 127.0.0.1:8353 --delay 0.02
"""

import argparse
import time

from twisted.internet import error
from twisted.internet.interfaces import IResolverSimple
from twisted.names import client, dns
from zope.interface import implementer

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor

DNS_SERVER = ("127.0.0.1", 8353)


@implementer(IResolverSimple)
class WebResolver:
    """Asks the synthetic web's name server, caching each answer."""

    def __init__(self):
        self._client = client.Resolver(servers=[DNS_SERVER])
        self._cache = {}

    @classmethod
    def from_crawler(cls, crawler, reactor):
        return cls()

    def install_on_reactor(self):
        from twisted.internet import reactor
        reactor.installResolver(self)

    def getHostByName(self, name, timeout=()):
        if name in self._cache:
            from twisted.internet import defer
            return defer.succeed(self._cache[name])
        # An A query (the web's server answers those; Twisted's own
        # getHostByName asks for ALL records).
        d = self._client.lookupAddress(name, timeout or (1, 3))

        def keep(result):
            answers = result[0]
            for rr in answers:
                if rr.type == dns.A:
                    addr = rr.payload.dottedQuad()
                    self._cache[name] = addr
                    return addr
            raise error.DNSLookupError(name)

        return d.addCallback(keep)


class WebSpider(scrapy.Spider):
    name = "testweb"
    pages = 0

    def __init__(self, hosts, port, **kw):
        super().__init__(**kw)
        self.start_urls = [f"http://host{i}.test:{port}/" for i in range(hosts)]
        self.links = LinkExtractor()

    def parse(self, response):
        WebSpider.pages += 1
        if not isinstance(response, scrapy.http.HtmlResponse):
            return
        for link in self.links.extract_links(response):
            yield response.follow(link.url, callback=self.parse)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--port", type=int, default=8380)
    p.add_argument("--dns", default="127.0.0.1:8353")
    p.add_argument("--delay", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--max-body", type=int, default=2 << 20)
    p.add_argument("--concurrency", type=int, default=64)
    a = p.parse_args()
    global DNS_SERVER
    host, port = a.dns.rsplit(":", 1)
    DNS_SERVER = (host, int(port))

    process = CrawlerProcess(settings={
        "ROBOTSTXT_OBEY": True,
        "USER_AGENT": "scrapy-bench",
        "CONCURRENT_REQUESTS": a.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
        "DOWNLOAD_DELAY": a.delay,
        "RANDOMIZE_DOWNLOAD_DELAY": False,
        "AUTOTHROTTLE_ENABLED": False,
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        "REACTOR_THREADPOOL_MAXSIZE": 20,
        "COOKIES_ENABLED": False,
        "RETRY_ENABLED": False,
        "DOWNLOAD_TIMEOUT": a.timeout,
        "DOWNLOAD_MAXSIZE": a.max_body,
        "DOWNLOAD_WARNSIZE": 0,
        "LOG_LEVEL": "WARNING",
        "DNS_RESOLVER": "__main__.WebResolver",
        "TELNETCONSOLE_ENABLED": False,
    })
    start = time.time()
    process.crawl(WebSpider, hosts=a.hosts, port=a.port)
    process.start()
    el = time.time() - start
    print(f"scrapy: {WebSpider.pages} responses in {el:.1f} s ({WebSpider.pages / el:.0f}/s)")


if __name__ == "__main__":
    main()
