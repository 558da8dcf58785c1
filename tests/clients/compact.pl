#!/usr/bin/perl
# Compacts a short history over Mojo::UserAgent (the transport of OpenAPI::Client::OpenAI) and
# prints the answer's body. OPENAI_BASE_URL and OPENAI_API_KEY say where and as whom.
use strict;
use warnings;
use Mojo::UserAgent;

my $base = $ENV{OPENAI_BASE_URL} or die "OPENAI_BASE_URL is not set\n";
my $ua   = Mojo::UserAgent->new(request_timeout => 30);
my $tx   = $ua->post(
    "$base/responses/compact" => {Authorization => "Bearer $ENV{OPENAI_API_KEY}"} => json => {
        model => 'gpt-5.4',
        input => [
            {role => 'user',      content => 'hello from perl'},
            {role => 'assistant', content => 'hi there'},
            {role => 'user',      content => 'please summarize'},
        ],
    }
);
my $res = $tx->result;    # dies on a connection error
binmode STDOUT;
print $res->body;
exit($res->is_success ? 0 : 1);
