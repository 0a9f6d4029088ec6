module omk-goproxy

go 1.19
