--
-- PostgreSQL database cluster dump
--

\restrict 3ItJSbH1mobEA60iP7YcUVnb7nzoMRYTqYTdFnbvUye0H4ulnBf2Dd5z42g1Cgf

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

--
-- User Configurations
--








\unrestrict 3ItJSbH1mobEA60iP7YcUVnb7nzoMRYTqYTdFnbvUye0H4ulnBf2Dd5z42g1Cgf

--
-- Databases
--

--
-- Database "template1" dump
--

\connect template1

--
-- PostgreSQL database dump
--

\restrict IOhymUaXefvtMDBHt19vZ4wsqZBXy5YfVSGP5W4i4yU5LEd20sAcFzkbgVP40SE

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- PostgreSQL database dump complete
--

\unrestrict IOhymUaXefvtMDBHt19vZ4wsqZBXy5YfVSGP5W4i4yU5LEd20sAcFzkbgVP40SE

--
-- Database "app" dump
--

--
-- PostgreSQL database dump
--

\restrict yWFl2dRyHZ2jav5zJS0aRZNhHVaJMgXCFzDSpWIUUB8A18ITdBBv0i1LZXHCHjd

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: app; Type: DATABASE; Schema: -; Owner: postgres
--

CREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';


ALTER DATABASE app OWNER TO postgres;

\unrestrict yWFl2dRyHZ2jav5zJS0aRZNhHVaJMgXCFzDSpWIUUB8A18ITdBBv0i1LZXHCHjd
\connect app
\restrict yWFl2dRyHZ2jav5zJS0aRZNhHVaJMgXCFzDSpWIUUB8A18ITdBBv0i1LZXHCHjd

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: Odd Name; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public."Odd Name" (
    x integer
);


ALTER TABLE public."Odd Name" OWNER TO postgres;

--
-- Name: items; Type: TABLE; Schema: public; Owner: postgres
--

CREATE TABLE public.items (
    id integer NOT NULL,
    v text
);


ALTER TABLE public.items OWNER TO postgres;

--
-- Data for 